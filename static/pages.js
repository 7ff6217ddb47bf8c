/* The script of the room pages (no inline script: the Content-Security-Policy allows only the
 * tool's own files).
 *
 * - form[data-confirm]: asks before sending (ending a class for everyone);
 * - form[data-refresh-after-submit]: the class opens in a new tab, so this page shows the new
 *   state once a teacher has started it;
 * - [data-status-url]: the waiting page polls the tool (never the video server) and opens the
 *   room page as soon as the class has started.
 *
 * The room ticket travels in the X-Room-Ticket header, never in a URL; the tool answers each
 * status poll with a fresh page address (`url`), so a page left open for hours still opens.
 */
(function () {
  "use strict";

  function statusOf(element) {
    return fetch(element.getAttribute("data-status-url"), {
      headers: { "Accept": "application/json", "X-Room-Ticket": element.getAttribute("data-ticket") },
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      if (response.status === 401 || response.status === 403) {
        // The ticket expired or access changed: the page at this address says so.
        window.location.reload();
        return null;
      }
      return response.ok ? response.json() : {};
    });
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  var statusSource = document.querySelector("[data-status-url]");

  document.querySelectorAll("form[data-refresh-after-submit]").forEach(function (form) {
    form.addEventListener("submit", function () {
      if (!statusSource) return;
      setTimeout(function () {
        statusOf(statusSource).then(function (data) { if (data && data.url) window.location.replace(data.url); });
      }, 1500);
    });
  });

  if (statusSource && statusSource.hasAttribute("data-wait")) {
    // Jitter spreads a class of students over the interval.
    var schedule = function () { setTimeout(poll, 4000 + Math.random() * 3000); };
    var poll = function () {
      statusOf(statusSource)
        .then(function (data) {
          if (data && data.open && data.url) window.location.replace(data.url);
          else if (data) schedule();
        })
        .catch(schedule);
    };
    schedule();
  }
})();
