  // LTI Client Side postMessages (platform storage): talk to the frame the platform named in
  // lti_storage_target, only with the platform's origin, and only believe its answers.
  function ltiStorage(target, origin) {
    var frame = target === "_parent" ? window.parent : (window.parent.frames[target] || window.parent);
    function ask(message, timeoutMs) {
      return new Promise(function (resolve, reject) {
        var id = "m" + Math.random().toString(36).slice(2);
        function onMessage(event) {
          var data = event.data || {};
          if (event.origin !== origin || data.message_id !== id) { return; }
          window.removeEventListener("message", onMessage);
          clearTimeout(timer);
          if (data.error) { reject(data.error); } else { resolve(data); }
        }
        var timer = setTimeout(function () {
          window.removeEventListener("message", onMessage);
          reject({code: "timeout"});
        }, timeoutMs);
        window.addEventListener("message", onMessage);
        message.message_id = id;
        frame.postMessage(message, origin);
      });
    }
    return {
      put: function (key, value) { return ask({subject: "lti.put_data", key: key, value: value}, 2000); },
      get: function (key) { return ask({subject: "lti.get_data", key: key}, 2000); }
    };
  }
