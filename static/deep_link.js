/* The script of the deep-linking pages (no inline script: the Content-Security-Policy allows
 * only the tool's own files).
 *
 * - [data-timezone-field]: the set-up form learns the person's time zone from the browser
 *   (an IANA name such as Europe/Paris); without this script the tool reads times as UTC and
 *   the page says so;
 * - form[data-auto-submit]: the signed answer goes to the learning platform at once (the page
 *   has a button for browsers without scripts).
 */
(function () {
  "use strict";

  var field = document.querySelector("[data-timezone-field]");
  if (field && !field.value) {
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      zone = "";
    }
    if (zone) {
      field.value = zone;
      document.querySelectorAll("[data-timezone-name]").forEach(function (name) { name.textContent = zone; });
    }
  }

  var answer = document.querySelector("form[data-auto-submit]");
  if (answer) answer.submit();
})();
