/* The timetable's script (no inline script: the Content-Security-Policy allows only the tool's
 * own files). Without it the pages stay true: times in UTC, the server's countdown.
 *
 * - time[data-local]: UTC times rewritten in the browser's own time zone and language;
 *   [data-timezone-name] says which zone that is;
 * - [data-starts-in]: "starts in 2 days / 3 hours / 12 minutes", as the server words it
 *   (schedule/timetable.py starts_in), kept current every 30 s;
 * - forms[data-local-start]: the teacher's date and time are read in the browser's time zone:
 *   the IANA name (Intl) goes in [data-timezone-field], the UTC offset at that date
 *   (getTimezoneOffset, the fallback when the server does not know the name) in
 *   [data-tz-offset-field]; input[data-local-value] shows a stored UTC time in local time;
 * - [data-refresh-at] on the timetable: when that moment passes (a class's entry window opens,
 *   it starts or it ends) the page fetches itself again through form[data-timetable-reload]
 *   (the room ticket comes back as a fresh page), unless the person is typing in a form.
 *
 * Clocks: the server's time (data-server-now) is the reference, so a wrong clock on the
 * person's computer neither shows a wrong countdown nor reloads the page in a loop.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-timetable]");
  var serverNow = root ? Date.parse(root.getAttribute("data-server-now")) : NaN;
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();
  function now() { return Date.now() + skew; }

  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (error) { zone = ""; }

  var FORMATS = {
    datetime: { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" },
    date: { weekday: "short", day: "numeric", month: "short", year: "numeric" },
    time: { hour: "2-digit", minute: "2-digit" }
  };

  /** Rewrite the times under `container` (the document at load; a part of the page that a
   *  script has just put in place: window.localTimes(element)). */
  function localTimes(container) {
    container.querySelectorAll("time[data-local]").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      try {
        element.textContent = new Intl.DateTimeFormat(undefined, FORMATS[element.getAttribute("data-local")] || FORMATS.datetime).format(moment);
      } catch (error) { /* the UTC text stays */ }
    });
    if (zone) {
      container.querySelectorAll("[data-timezone-name]").forEach(function (element) { element.textContent = zone; });
    }
  }
  window.localTimes = localTimes;
  localTimes(document);

  function plural(count, unit) { return count + " " + unit + (count === 1 ? "" : "s"); }

  function startsIn(milliseconds) {
    var seconds = milliseconds / 1000;
    if (seconds <= 60) return seconds > 0 ? "starts in less than a minute" : "starting now";
    if (seconds >= 86400) return "starts in " + plural(Math.floor(seconds / 86400), "day");
    if (seconds >= 3600) return "starts in " + plural(Math.floor(seconds / 3600), "hour");
    return "starts in " + plural(Math.floor(seconds / 60), "minute");
  }

  var countdowns = document.querySelectorAll("[data-starts-in]");
  function tick() {
    countdowns.forEach(function (element) {
      var at = Date.parse(element.getAttribute("data-starts-in"));
      if (!isNaN(at)) element.textContent = startsIn(at - now());
    });
  }
  if (countdowns.length) { tick(); setInterval(tick, 30000); }

  function pad(number) { return (number < 10 ? "0" : "") + number; }
  function localInputValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  document.querySelectorAll("form[data-local-start]").forEach(function (form) {
    var start = form.querySelector("input[name=start]");
    var utc = start && start.getAttribute("data-local-value");
    if (utc && !isNaN(Date.parse(utc))) start.value = localInputValue(new Date(utc));
    form.querySelectorAll("[data-timezone-field]").forEach(function (field) { field.value = zone; });
    form.addEventListener("submit", function () {
      var chosen = start ? new Date(start.value) : new Date();  // a datetime-local value reads as local time
      var offset = isNaN(chosen.getTime()) ? new Date().getTimezoneOffset() : chosen.getTimezoneOffset();
      form.querySelectorAll("[data-tz-offset-field]").forEach(function (field) { field.value = String(offset); });
    });
  });

  var reload = document.querySelector("form[data-timetable-reload]");
  var refreshAt = root ? Date.parse(root.getAttribute("data-refresh-at") || "") : NaN;
  var DAY = 86400000;
  function typing() {
    var active = document.activeElement;
    return active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && active.type !== "hidden";
  }
  function refresh() {
    if (typing()) { setTimeout(refresh, 60000); return; }
    reload.submit();
  }
  if (reload && !isNaN(refreshAt)) {
    var wait = refreshAt - now();
    // A little after the moment, spread over 15 s so a class of students does not ask at once.
    if (wait < DAY) setTimeout(refresh, Math.max(wait, 0) + 1000 + Math.random() * 15000);
  }
})();
