/* The administration page keeps itself true: every minute (ADMIN_REFRESH_SECONDS) it asks the tool for the parts that
 * change (video servers, failed deliveries, backlog) and puts them in place. The admin ticket
 * travels in the X-Admin-Ticket header, never in a URL. */
(function () {
  "use strict";
  var live = document.getElementById("admin-live");
  if (!live) return;

  function refresh() {
    fetch(live.getAttribute("data-live-url"), {
      headers: { "X-Admin-Ticket": live.getAttribute("data-ticket"), "Accept": "text/html" },
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      if (response.ok) return response.text();
      if (response.status === 401 || response.status === 403) {
        live.insertAdjacentHTML("afterbegin",
          '<p class="notice warning" role="alert">Your administration access has ended: open it again.</p>');
        return null;
      }
      throw new Error("HTTP " + response.status);
    }).then(function (html) {
      if (html === null) return;
      live.innerHTML = html;
      if (window.localTimes) window.localTimes(live); // static/timetable.js: times in the reader's zone
      if (window.checkWideTables) window.checkWideTables(); // static/tables.js
      schedule();
    }).catch(schedule);
  }

  var every = parseInt(live.getAttribute("data-refresh-ms"), 10) || 60000;
  function schedule() { setTimeout(refresh, every); }
  schedule();
})();
