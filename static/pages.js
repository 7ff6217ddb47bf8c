/* The script of the room pages (no inline script: the Content-Security-Policy allows only the
 * tool's own files).
 *
 * - form[data-confirm]: asks before sending (ending a class for everyone);
 * - [data-status-url] (templates/rooms/_live_area.html): every room page polls the tool (never
 *   the video server) and swaps in the class's state as the server words it: not started,
 *   starting, live (since when, how many people, recorded or not), ended (docs/room-states.md);
 *   the waiting page ([data-wait]) swaps in the Join control in place as soon as the person may
 *   join, like the room page does (it no longer loads the room page: at the top of the hour a
 *   class of 2,000 would ask the tool for 2,000 whole pages at once);
 * - form[data-join]: starts or joins the class through fetch, so a refusal shows in this tab.
 *
 * The room ticket travels in the X-Room-Ticket header, never in a URL; the tool answers each
 * status poll with a fresh page address (`url`), so a page left open for hours still opens.
 */
(function () {
  "use strict";

  // The version of the state this page shows: the tool answers "same" (no words to render, no
  // new address to sign) while nothing changed, which is what a waiting crowd asks most.
  var shownVersion = "";

  function statusOf(element) {
    var headers = { "Accept": "application/json", "X-Room-Ticket": element.getAttribute("data-ticket") };
    if (shownVersion) headers["X-Shown-Version"] = shownVersion;
    return fetch(element.getAttribute("data-status-url"), {
      headers: headers,
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

  // Listened for on the document: the forms may be swapped in after the page loaded.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  });

  var area = document.querySelector("[data-status-url]");
  var statusText = area && area.querySelector("[data-class-status]");
  var controls = area && area.querySelector("[data-class-controls]");
  var errorBox = area && area.querySelector("#class-error");
  var shown = area ? { status: statusText.innerHTML, controls: controls.innerHTML } : null;
  var LOCAL_TIME = { hour: "2-digit", minute: "2-digit" };

  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      try { element.textContent = new Intl.DateTimeFormat(undefined, LOCAL_TIME).format(moment); } catch (error) { /* UTC stays */ }
    });
  }

  function showError(message) {
    if (!errorBox) { window.alert(message); return; }
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  // The server words the state (templates/rooms/_class_state.html); a part is swapped only when
  // it changed, so focus and screen readers are left alone while nothing happens.
  function show(data) {
    if (!data || !data.html || !area) return;
    area.setAttribute("data-state", data.state);
    if (data.html.status !== shown.status) {
      statusText.innerHTML = shown.status = data.html.status;
      localTimes(statusText);
    }
    if (data.html.controls !== shown.controls) {
      var hadFocus = controls.contains(document.activeElement);
      controls.innerHTML = shown.controls = data.html.controls;
      if (hadFocus && controls.querySelector("button")) controls.querySelector("button").focus();
    }
  }

  var timer = null;
  // The tool's interval for this room's crowd (`poll`, seconds): a class of 2,000 polls less
  // often than a class of 30, so that the tool hears from a room at a bounded rate.
  var crowdSeconds = 0;
  function interval() {
    // Jitter spreads a class of students over the interval; a class that ended changes slowly.
    if (area.getAttribute("data-state") === "ended") return 10000 + Math.random() * 3000;
    var base = Math.max(4000, crowdSeconds * 1000);
    return base + Math.random() * base * 0.75;
  }
  function follow(delay) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(poll, delay !== undefined ? delay : interval());
  }
  function poll() {
    statusOf(area)
      .then(function (data) {
        if (!data) return;
        if (data.poll) crowdSeconds = data.poll;
        if (data.same) { follow(); return; }
        shownVersion = data.version || "";
        show(data);
        follow();
      })
      .catch(function () { follow(); });
  }

  // form[data-join]: the class tab opens at once (a click may open a tab; a script waiting for
  // the server may not), the course tab asks the tool for the class's address and sends the new
  // tab there; a refusal (the video server failed, the class ended) closes that tab and is shown
  // here, where the person is looking. Without script the form opens the tab itself.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.matches || !form.matches("form[data-join]") || !window.fetch || !area) return;
    var tab = window.open("", "_blank");
    if (!tab) return;
    event.preventDefault();
    var button = form.querySelector("button");
    try { tab.document.title = button.getAttribute("data-busy"); tab.document.body.textContent = button.getAttribute("data-busy"); } catch (error) { /* a blank tab is fine */ }
    if (errorBox) errorBox.hidden = true;
    button.disabled = true;
    var label = button.textContent;
    button.textContent = button.getAttribute("data-busy");
    if (timer) clearTimeout(timer);  // no poll speaks of the old state while the server works
    if (form.querySelector("input[name=intent]") === null) {
      statusText.innerHTML = '<span class="spinner" aria-hidden="true"></span> ';
      statusText.appendChild(document.createTextNode(button.getAttribute("data-busy")));
      shown.status = "";  // the next answer is shown whatever it says
    }
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "Accept": "application/json", "X-Room-Ticket": area.getAttribute("data-ticket") },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (answer) {
      if (answer.ok && answer.data.url) {
        tab.location.replace(answer.data.url);
      } else {
        tab.close();
        showError(answer.data.error || "The class could not be opened. Please try again.");
      }
    }).catch(function () {
      tab.close();
      showError("The tool could not be reached. Check your connection and try again.");
    }).then(function () {
      button.disabled = false;
      button.textContent = label;
      follow(1000);
    });
  });

  if (area) {
    localTimes(statusText);
    follow();
  }
})();
