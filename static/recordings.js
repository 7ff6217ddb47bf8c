/* The room's recordings list (templates/rooms/_recordings.html, docs/recordings.md).
 *
 * While a class ran recently the list carries data-poll-seconds: this script fetches the list
 * again that often (GET /rooms/<id>/recordings, the room ticket in the X-Room-Ticket header, never
 * in a URL) and puts the new one in place when it changed (data-version), so a recording that
 * the video server has just finished appears without a reload. It waits while someone is typing
 * in the list (a rename), and gives the new list's times the browser's time zone, as timetable.js does for the
 * page as it loaded (pages.js asks before any form[data-confirm] is sent, swapped-in ones included).
 */
(function () {
  "use strict";

  var FORMATS = {
    datetime: { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" },
    date: { weekday: "short", day: "numeric", month: "short", year: "numeric" }
  };

  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      try {
        element.textContent = new Intl.DateTimeFormat(undefined, FORMATS[element.getAttribute("data-local")] || FORMATS.datetime).format(moment);
      } catch (error) { /* the UTC text stays */ }
    });
  }

  function poll() {
    var list = document.getElementById("recordings");
    if (!list || !list.hasAttribute("data-poll-seconds")) return;
    var seconds = Math.max(1, parseInt(list.getAttribute("data-poll-seconds"), 10) || 30);
    setTimeout(function () {
      if (list.contains(document.activeElement) && document.activeElement.tagName === "INPUT") { poll(); return; }
      fetch(list.getAttribute("data-recordings-url"), {
        headers: { "Accept": "text/html", "X-Room-Ticket": list.getAttribute("data-ticket") },
        credentials: "omit",
        cache: "no-store"
      }).then(function (response) {
        return response.ok ? response.text() : null;
      }).then(function (html) {
        var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById("recordings");
        if (fresh && fresh.getAttribute("data-version") !== list.getAttribute("data-version")) {
          var adopted = document.importNode(fresh, true);
          list.replaceWith(adopted);
          localTimes(adopted);
        } else if (fresh && !fresh.hasAttribute("data-poll-seconds")) {
          list.removeAttribute("data-poll-seconds");  // the class is long over: stop asking
        }
        poll();
      }).catch(poll);
    }, seconds * 1000);
  }

  poll();
})();
