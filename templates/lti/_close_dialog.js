  (function () {
    var button = document.getElementById("close-dialog");
    var hint = document.getElementById("close-hint");
    var platform = window.opener || (window.parent !== window ? window.parent : null);
    button.addEventListener("click", function () {
      if (platform) {
        platform.postMessage({subject: "org.imsglobal.lti.close"}, "*");
      }
      hint.hidden = false;
    });
  })();
