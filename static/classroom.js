/* The tool's own LiveKit classroom (templates/livekit/classroom.html).
 *
 * Uses livekit-client's UMD build (global LivekitClient, served from /static/vendor/). The page
 * gets its settings from the JSON in #lk-config: the server URL, the room ticket `t` (sent as
 * form data with every POST, never a cookie, never in a URL) and the URLs of the tool's own
 * endpoints. The access token the tool made for this person and room comes in the address's
 * fragment (#lk=…, which no server sees); without it (a reload) the page asks tokenUrl first:
 *   tokenUrl  POST t            -> {"token": ...}   a fresh token to reconnect with
 *   actionUrl POST t, action=mute|remove, identity, track -> {"ok": true} | {"error": ...}
 *   endUrl    POST t            -> 303              ends the class for everyone
 *   recordingUrl POST t, action=start|stop -> {"recording": bool, "egress_id": ...} | 409 {"error", "recording"}
 *             (only when cfg.recordingAvailable: LiveKit Egress configured, the room may be recorded, a teacher)
 *   messageUrl POST t, type=chat, text, to?  |  type=hand, raised, identity? (a teacher lowering
 *             someone's hand), to? (a raised hand told again to a newcomer)  |  type=recording,
 *             active (teachers)  -> {"ok": true} | 4xx {"error": ...}
 *
 * Chat, raised hands and the recording state travel as LiveKit data messages on the topic
 * "classroom", but no browser sends them: tokens grant no canPublishData. The page POSTs each
 * one to messageUrl; the tool checks it (the sender's own role, the room's chat locks, at most
 * 1000 characters), counts chat messages and raised hands for the teacher's attendance page, and
 * sends it with RoomService.SendData: UTF-8 JSON with a `type` ("chat": {text, private}; "hand":
 * {raised, identity?}; "recording": {active}) and `from` (the sender's identity) and `role`
 * ("moderator"|"attendee"), both set by the tool. The page accepts classroom messages only
 * from the server (no participant), so `from` and `role` are the tool's word, and what the
 * page shows is what the tool counted. Everyone's "Recording" indicator follows
 * cfg.recordingActive at load, those messages, and LiveKit's own word on the room
 * (RoomEvent.RecordingStatusChanged, Room.isRecording).
 */
(function () {
  "use strict";

  var TOPIC = "classroom";
  var MAX_CHAT = 1000;
  var RECONNECT_DELAYS = [1000, 2000, 4000, 8000, 15000];

  var configElement = document.getElementById("lk-config");
  if (!configElement) return;
  var cfg = JSON.parse(configElement.textContent);

  // The token came in the address's fragment (#lk=): take it, then drop it from the address
  // bar and the history at once.
  var tokenFromAddress = null;
  try {
    var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    tokenFromAddress = fragment.get("lk");
    if (tokenFromAddress) {
      window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search);
    }
  } catch (e) { /* very old browser: the token stays where it is */ }

  var $ = function (id) { return document.getElementById(id); };
  var ui = {
    connection: $("lk-connection"),
    connectionText: $("lk-connection-text"),
    retry: $("lk-retry"),
    back: $("lk-back"),
    startAudio: $("lk-start-audio"),
    count: $("participant-count"),
    countLabel: $("participant-count-label"),
    frameNotice: $("lk-frame-notice"),
    unsupported: $("lk-unsupported"),
    grid: $("lk-grid"),
    audio: $("lk-audio"),
    people: $("participant-list"),
    chatLog: $("chat-log"),
    chatForm: $("chat-form"),
    chatTo: $("chat-to"),
    chatInput: $("chat-input"),
    chatSend: $("chat-send"),
    mic: $("toggle-mic"),
    camera: $("toggle-camera"),
    screen: $("toggle-screen"),
    hand: $("toggle-hand"),
    leave: $("leave"),
    end: $("end-class"),
    record: $("toggle-recording"),
    recording: $("lk-recording"),
    announce: $("lk-announce"),
  };

  // ------------------------------------------------------------------ small helpers
  function announce(text) {
    // Re-set the text so that the same message twice is announced twice.
    ui.announce.textContent = "";
    window.setTimeout(function () { ui.announce.textContent = text; }, 50);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function initials(name) {
    var parts = String(name || "?").trim().split(/\s+/);
    var first = parts[0] ? parts[0].charAt(0) : "?";
    var last = parts.length > 1 ? parts[parts.length - 1].charAt(0) : "";
    return (first + last).toUpperCase();
  }

  function plural(n, one, many) { return n === 1 ? one : many; }

  /** POST form data with the ticket; no cookies, no redirects followed. */
  function post(url, fields) {
    var body = new URLSearchParams();
    body.set("t", cfg.ticket);
    Object.keys(fields || {}).forEach(function (key) { body.set(key, fields[key]); });
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "omit",
      redirect: "manual",
      headers: { "Accept": "application/json" },
    });
  }

  function errorOf(response, fallback) {
    return response.json().then(
      function (data) { return (data && data.error) || fallback; },
      function () { return fallback; }
    );
  }

  // ------------------------------------------------------------------ recording state
  var recording = cfg.recordingActive === true;
  var recordingBusy = false;

  /** Show whether the class is being recorded (everyone) and the teacher's toggle. */
  function setRecording(on, say) {
    on = on === true;
    var changed = on !== recording;
    recording = on;
    if (ui.recording) ui.recording.hidden = !on;
    if (ui.record) {
      ui.record.setAttribute("aria-pressed", on ? "true" : "false");
      ui.record.querySelector(".lk-record-label").textContent = on ? "Stop recording" : "Start recording";
    }
    if (changed && say) announce(on ? "This class is being recorded." : "Recording stopped.");
  }

  // ------------------------------------------------------------------ connection state
  var STATE_TEXT = {
    connecting: "Connecting to the class…",
    connected: "Connected to the class.",
    reconnecting: "Connection lost. Reconnecting…",
    failed: "Could not connect to the class's video server: it did not answer. It may be down or unreachable " +
      "from this network. Try again in a moment, or go back to the course.",
    ended: "The class has ended.",
    left: "You left the class.",
  };
  var state = "connecting";

  function setState(next, text) {
    state = next;
    ui.connection.setAttribute("data-state", next);
    ui.connectionText.textContent = text || STATE_TEXT[next] || next;
    ui.retry.hidden = next !== "failed";
    if (ui.back) ui.back.hidden = next !== "failed";
    if (next !== "connected") ui.startAudio.hidden = true;
    var live = next === "connected";
    [ui.mic, ui.camera, ui.screen, ui.hand].forEach(function (button) {
      if (button) button.disabled = !live;
    });
    if (ui.chatInput) {
      ui.chatInput.disabled = !live;
      ui.chatSend.disabled = !live;
      ui.chatInput.placeholder = live ? "Write a message" : "Chat opens when connected";
    }
    if (ui.end) ui.end.disabled = next === "ended";
    // Recording is started and stopped through the tool: it works while this page reconnects.
    if (ui.record) ui.record.disabled = next === "ended" || recordingBusy;
    document.getElementById("classroom").setAttribute("data-connection", next);
  }

  function fail(message) {
    setState("failed", message);
  }

  /** What a failed connection attempt means, as far as this page can tell (never a guess
   *  that blames the person's own connection when the browser says it is online). */
  function failureText(error) {
    if (navigator.onLine === false) {
      return "Could not connect to the class: this device is offline. Reconnect to the internet, then try again.";
    }
    var reasons = LK.ConnectionErrorReason || {};
    if (error && reasons.NotAllowed !== undefined && error.reason === reasons.NotAllowed) {
      return "Could not connect to the class: the video server did not accept this page's access. Try again " +
        "(it fetches a fresh access), or go back to the course and open the class again.";
    }
    return STATE_TEXT.failed;
  }

  // ------------------------------------------------------------------ LiveKit
  var LK = window.LivekitClient;
  if (!LK || !LK.Room) {
    fail("The video component did not load. Reload the page to try again.");
    return;
  }
  if (typeof LK.isBrowserSupported === "function" && !LK.isBrowserSupported()) {
    ui.unsupported.hidden = false;
    fail("This browser cannot join the video class.");
    return;
  }

  var Source = LK.Track.Source;
  var RoomEvent = LK.RoomEvent;
  var Reason = LK.DisconnectReason || {};
  // LiveKit's TrackSource numbers, used in a token's canPublishSources.
  var SOURCE_NUMBER = { camera: 1, microphone: 2, screen_share: 3 };

  var room = new LK.Room({ adaptiveStream: true, dynacast: true });
  window.liveClassroom = { room: room, config: cfg }; // for debugging and the browser tests

  var token = tokenFromAddress;
  var hands = new Set(); // identities with a raised hand
  var leaving = false;
  var ended = false;
  var everConnected = false;
  var reconnectAttempt = 0;
  var reconnectTimer = null;
  var connecting = false; // a connect() is under way: its own outcome decides what happens next

  function roleOf(participant) {
    if (participant === room.localParticipant) return cfg.isModerator ? "moderator" : "attendee";
    try {
      var meta = JSON.parse(participant.metadata || "{}");
      return meta && meta.role === "moderator" ? "moderator" : "attendee";
    } catch (e) {
      return "attendee";
    }
  }

  function identityOf(participant) {
    return participant === room.localParticipant ? cfg.identity : participant.identity;
  }

  function nameOf(participant) {
    if (participant === room.localParticipant) return cfg.name;
    return participant.name || participant.identity;
  }

  function publication(participant, source) {
    return participant.getTrackPublication(source) || null;
  }

  function isOn(pub) { return !!pub && !pub.isMuted && !!(pub.track || pub.trackSid); }

  function everyone() {
    var list = [room.localParticipant];
    room.remoteParticipants.forEach(function (p) { list.push(p); });
    return list;
  }

  function sortPeople(list) {
    return list.slice().sort(function (a, b) {
      var ra = roleOf(a) === "moderator" ? 0 : 1;
      var rb = roleOf(b) === "moderator" ? 0 : 1;
      if (ra !== rb) return ra - rb;
      var ha = hands.has(identityOf(a)) ? 0 : 1;
      var hb = hands.has(identityOf(b)) ? 0 : 1;
      if (ha !== hb) return ha - hb;
      return nameOf(a).localeCompare(nameOf(b));
    });
  }

  /** Students in a room where only teachers' webcams are shown see no other student's camera
   *  (the token lets no student publish one there either). */
  function mayWatch(participant, source) {
    if (source !== Source.Camera) return true;
    if (participant === room.localParticipant) return true;
    return cfg.allow.studentCameras || roleOf(participant) === "moderator";
  }

  // ------------------------------------------------------------------ rendering
  var renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    Promise.resolve().then(function () {
      renderQueued = false;
      renderCount();
      renderGrid();
      renderPeople();
      renderChatRecipients();
      renderControls();
    });
  }

  function renderCount() {
    var n = room.remoteParticipants.size + 1;
    ui.count.textContent = String(n);
    ui.countLabel.textContent = plural(n, "person", "people");
  }

  function renderControls() {
    var local = room.localParticipant;
    setPressed(ui.mic, local.isMicrophoneEnabled);
    setPressed(ui.camera, local.isCameraEnabled);
    setPressed(ui.screen, local.isScreenShareEnabled);
    setPressed(ui.hand, hands.has(cfg.identity));

    // What the token allows (the server's word) hides what the settings already allowed.
    var perms = local.permissions;
    if (perms) {
      var sources = perms.canPublishSources || [];
      var may = function (name) {
        return perms.canPublish !== false && (sources.length === 0 || sources.indexOf(SOURCE_NUMBER[name]) >= 0);
      };
      if (ui.mic) ui.mic.hidden = !may("microphone");
      if (ui.camera) ui.camera.hidden = !may("camera");
      if (ui.screen) ui.screen.hidden = !may("screen_share") || !canShareScreen();
    } else if (ui.screen) {
      ui.screen.hidden = !canShareScreen();
    }
  }

  function canShareScreen() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  }

  function setPressed(button, on) {
    if (button) button.setAttribute("aria-pressed", on ? "true" : "false");
  }

  /** The tiles: every screen share, then a camera tile per person (teachers first). */
  function wantedTiles() {
    var tiles = [];
    var people = sortPeople(everyone());
    people.forEach(function (p) {
      var screen = publication(p, Source.ScreenShare);
      if (isOn(screen)) tiles.push({ key: identityOf(p) + ":screen", participant: p, source: Source.ScreenShare, pub: screen });
    });
    people.forEach(function (p) {
      if (p !== room.localParticipant && !mayWatch(p, Source.Camera)) return;
      tiles.push({ key: identityOf(p) + ":camera", participant: p, source: Source.Camera, pub: publication(p, Source.Camera) });
    });
    return tiles;
  }

  function renderGrid() {
    var tiles = wantedTiles();
    var existing = {};
    Array.prototype.forEach.call(ui.grid.children, function (node) { existing[node.getAttribute("data-key")] = node; });
    var speaking = {};
    (room.activeSpeakers || []).forEach(function (p) { speaking[identityOf(p)] = true; });

    tiles.forEach(function (tile, index) {
      var node = existing[tile.key];
      delete existing[tile.key];
      if (!node) node = makeTile(tile);
      var p = tile.participant;
      var identity = identityOf(p);
      var role = roleOf(p);
      node.classList.toggle("is-teacher", role === "moderator");
      node.classList.toggle("is-speaking", !!speaking[identity]);
      node.classList.toggle("has-hand", hands.has(identity));
      node.querySelector(".lk-tile-name").textContent = nameOf(p) + (p === room.localParticipant ? " (you)" : "");
      node.querySelector(".lk-badge-teacher").hidden = role !== "moderator";
      node.querySelector(".lk-badge-hand").hidden = !hands.has(identity);
      var mic = publication(p, Source.Microphone);
      node.querySelector(".lk-badge-muted").hidden = tile.source !== Source.Camera || isOn(mic);
      attachVideo(node, tile);
      if (ui.grid.children[index] !== node) ui.grid.insertBefore(node, ui.grid.children[index] || null);
    });
    Object.keys(existing).forEach(function (key) {
      var node = existing[key];
      detachVideo(node);
      node.remove();
    });
    ui.grid.setAttribute("data-count", String(tiles.length));
  }

  function makeTile(tile) {
    var figure = el("figure", "lk-tile" + (tile.source === Source.ScreenShare ? " is-screen" : ""));
    figure.setAttribute("data-key", tile.key);
    figure.setAttribute("data-identity", identityOf(tile.participant));
    var video = el("video", "lk-video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the separate audio elements
    video.hidden = true;
    if (tile.participant === room.localParticipant && tile.source === Source.Camera) video.classList.add("is-mirrored");
    var avatar = el("div", "lk-avatar");
    avatar.setAttribute("aria-hidden", "true");
    avatar.appendChild(el("span", null, initials(nameOf(tile.participant))));
    var caption = el("figcaption", "lk-tile-caption");
    caption.appendChild(el("span", "lk-tile-name"));
    var teacher = el("span", "lk-badge lk-badge-teacher", "Teacher");
    var hand = el("span", "lk-badge lk-badge-hand", "Hand raised");
    var muted = el("span", "lk-badge lk-badge-muted", "Muted");
    if (tile.source === Source.ScreenShare) caption.appendChild(el("span", "lk-badge", "Screen"));
    caption.appendChild(teacher);
    caption.appendChild(hand);
    caption.appendChild(muted);
    figure.appendChild(video);
    figure.appendChild(avatar);
    figure.appendChild(caption);
    return figure;
  }

  function attachVideo(node, tile) {
    var video = node.querySelector("video");
    var track = tile.pub && !tile.pub.isMuted ? tile.pub.track : null;
    var current = node.__track || null;
    if (current && current !== track) {
      current.detach(video);
      node.__track = null;
    }
    if (track && node.__track !== track) {
      track.attach(video);
      node.__track = track;
    }
    video.hidden = !node.__track;
    node.querySelector(".lk-avatar").hidden = !!node.__track;
  }

  function detachVideo(node) {
    if (node.__track) {
      node.__track.detach(node.querySelector("video"));
      node.__track = null;
    }
  }

  /** The participant list: rows keyed by identity, rebuilt only when something shown changed. */
  function renderPeople() {
    if (!ui.people) return;
    var people = sortPeople(everyone());
    var existing = {};
    Array.prototype.forEach.call(ui.people.children, function (node) { existing[node.getAttribute("data-identity")] = node; });
    people.forEach(function (p, index) {
      var identity = identityOf(p);
      var row = personRow(p);
      var node = existing[identity];
      delete existing[identity];
      if (!node || node.getAttribute("data-signature") !== row.signature) {
        var fresh = row.build();
        if (node) {
          var focused = node.contains(document.activeElement) ? document.activeElement.getAttribute("data-action") : null;
          node.replaceWith(fresh);
          if (focused) {
            var again = fresh.querySelector('[data-action="' + focused + '"]');
            (again || ui.people).focus();
          }
        }
        node = fresh;
      }
      if (ui.people.children[index] !== node) ui.people.insertBefore(node, ui.people.children[index] || null);
    });
    Object.keys(existing).forEach(function (key) { existing[key].remove(); });
  }

  function personRow(p) {
    var identity = identityOf(p);
    var name = nameOf(p);
    var role = roleOf(p);
    var isLocal = p === room.localParticipant;
    var mic = publication(p, Source.Microphone);
    var cam = publication(p, Source.Camera);
    var micOn = isOn(mic);
    var camOn = isOn(cam);
    var hand = hands.has(identity);
    var controls = cfg.isModerator && !isLocal;
    var signature = JSON.stringify([name, role, micOn, camOn, hand, micOn && mic.trackSid, camOn && cam.trackSid, controls]);
    return {
      signature: signature,
      build: function () {
        var li = el("li", "lk-person" + (role === "moderator" ? " is-teacher" : ""));
        li.setAttribute("data-identity", identity);
        li.setAttribute("data-signature", signature);
        var who = el("div", "lk-person-who");
        who.appendChild(el("span", "lk-person-name", name + (isLocal ? " (you)" : "")));
        if (role === "moderator") who.appendChild(el("span", "lk-badge lk-badge-teacher", "Teacher"));
        if (hand) who.appendChild(el("span", "lk-badge lk-badge-hand", "Hand raised"));
        var media = el("span", "lk-person-media", (micOn ? "Mic on" : "Mic off") + " · " + (camOn ? "Camera on" : "Camera off"));
        who.appendChild(media);
        li.appendChild(who);
        if (controls) {
          var actions = el("div", "lk-person-actions");
          if (hand) actions.appendChild(actionButton("lower-hand", "Lower hand", "Lower the hand of " + name));
          if (micOn) actions.appendChild(actionButton("mute-mic", "Mute", "Mute " + name, mic.trackSid));
          if (camOn) actions.appendChild(actionButton("mute-camera", "Stop camera", "Stop the camera of " + name, cam.trackSid));
          actions.appendChild(actionButton("remove", "Remove", "Remove " + name + " from the class", null, "danger"));
          li.appendChild(actions);
        }
        return li;
      },
    };
  }

  function actionButton(action, text, label, track, extra) {
    var button = el("button", "button small-button" + (extra ? " " + extra : ""), text);
    button.type = "button";
    button.setAttribute("data-action", action);
    button.setAttribute("aria-label", label);
    if (track) button.setAttribute("data-track", track);
    return button;
  }

  function renderChatRecipients() {
    if (!ui.chatTo) return;
    var chosen = ui.chatTo.value;
    var options = [{ value: "", text: "Everyone" }];
    sortPeople(everyone()).forEach(function (p) {
      if (p === room.localParticipant) return;
      if (!mayPrivateChat(roleOf(room.localParticipant), roleOf(p))) return;
      options.push({ value: p.identity, text: nameOf(p) + (roleOf(p) === "moderator" ? " (teacher, private)" : " (private)") });
    });
    var signature = JSON.stringify(options);
    if (ui.chatTo.getAttribute("data-signature") === signature) return;
    ui.chatTo.setAttribute("data-signature", signature);
    ui.chatTo.textContent = "";
    options.forEach(function (option) {
      var node = el("option", null, option.text);
      node.value = option.value;
      ui.chatTo.appendChild(node);
    });
    ui.chatTo.value = options.some(function (o) { return o.value === chosen; }) ? chosen : "";
  }

  /** "No private chat between students": a student may still write to a teacher privately. */
  function mayPrivateChat(fromRole, toRole) {
    if (!cfg.locks.privateChat) return true;
    return fromRole === "moderator" || toRole === "moderator";
  }

  // ------------------------------------------------------------------ chat and hands
  /** A classroom message, sent by the tool (messageUrl): resolves when it went out, rejects
   *  with the reason to announce otherwise. */
  function send(fields) {
    return post(cfg.messageUrl, fields).then(function (response) {
      if (response.ok) return null;
      return errorOf(response, "(" + response.status + ")").then(function (text) { throw new Error(text); });
    });
  }

  function addChatLine(fromName, fromRole, text, mine, privateTo) {
    if (!ui.chatLog) return;
    var li = el("li", "lk-msg" + (mine ? " is-mine" : "") + (privateTo !== null ? " is-private" : ""));
    var head = el("div", "lk-msg-head");
    head.appendChild(el("span", "lk-msg-who", mine ? "You" : fromName));
    if (fromRole === "moderator") head.appendChild(el("span", "lk-badge lk-badge-teacher", "Teacher"));
    if (privateTo !== null) head.appendChild(el("span", "lk-msg-private", privateTo ? "private to " + privateTo : "private"));
    var time = el("time", "lk-msg-time", new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    time.dateTime = new Date().toISOString();
    head.appendChild(time);
    li.appendChild(head);
    li.appendChild(el("p", "lk-msg-text", text));
    ui.chatLog.appendChild(li);
    ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
  }

  function senderOf(message) {
    if (message.from === cfg.identity) return { name: cfg.name, role: message.role, mine: true };
    var participant = room.remoteParticipants.get(message.from);
    return { name: participant ? nameOf(participant) : "Someone who left", role: message.role, mine: false };
  }

  /** Classroom messages come from the tool only (no participant: sent by the server, see the
   *  header); their `from` and `role` are the tool's. */
  function onData(payload, participant, kind, topic) {
    if (topic !== TOPIC || participant) return;
    var message;
    try {
      message = JSON.parse(new TextDecoder().decode(payload));
    } catch (e) {
      return;
    }
    if (!message || typeof message !== "object" || typeof message.from !== "string") return;
    var from = senderOf(message);
    if (message.type === "chat") {
      if (!ui.chatLog || typeof message.text !== "string" || from.mine) return; // one's own is shown on sending
      var text = message.text.slice(0, MAX_CHAT).trim();
      if (!text) return;
      addChatLine(from.name, from.role, text, false, message.private === true ? "" : null);
    } else if (message.type === "recording") {
      if (from.role !== "moderator" || typeof message.active !== "boolean") return;
      setRecording(message.active, true);
    } else if (message.type === "hand") {
      var target = message.from;
      if (typeof message.identity === "string" && message.identity !== message.from) {
        if (from.role !== "moderator" || message.raised) return; // only a teacher lowers someone else's hand
        target = message.identity;
      }
      var was = hands.has(target);
      if (message.raised) hands.add(target); else hands.delete(target);
      if (target === cfg.identity && was && !message.raised && !from.mine) announce(from.name + " lowered your hand.");
      else if (message.raised && !was && cfg.isModerator) announce(from.name + " raised their hand.");
      render();
    }
  }

  if (ui.chatForm) {
    ui.chatForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = ui.chatInput.value.trim().slice(0, MAX_CHAT);
      if (!text || state !== "connected") return;
      var to = ui.chatTo.value;
      var toName = to ? ui.chatTo.options[ui.chatTo.selectedIndex].textContent.replace(/ \((teacher, )?private\)$/, "") : null;
      ui.chatSend.disabled = true;
      send({ type: "chat", text: text, to: to }).then(function () {
        addChatLine(cfg.name, cfg.isModerator ? "moderator" : "attendee", text, true, to ? toName : null);
        ui.chatInput.value = "";
      }, function (error) {
        announce("Your message could not be sent: " + error.message);
      }).then(function () {
        ui.chatSend.disabled = state !== "connected";
        ui.chatInput.focus();
      });
    });
  }

  function setHand(raised) {
    if (raised) hands.add(cfg.identity); else hands.delete(cfg.identity);
    render();
    send({ type: "hand", raised: raised }).catch(function () {
      if (raised) hands.delete(cfg.identity); else hands.add(cfg.identity);
      render();
      announce("Your hand could not be " + (raised ? "raised" : "lowered") + ". Try again.");
    });
    announce(raised ? "Your hand is raised." : "Your hand is lowered.");
  }

  // ------------------------------------------------------------------ own camera, microphone, screen
  var busy = false;
  function toggle(button, isEnabled, setEnabled, what) {
    if (!button) return;
    button.addEventListener("click", function () {
      if (busy || state !== "connected") return;
      busy = true;
      button.setAttribute("aria-busy", "true");
      var want = !isEnabled();
      setEnabled(want).then(function () {
        announce(what + (want ? " on." : " off."));
      }, function (error) {
        announce(mediaError(error, what));
      }).then(function () {
        busy = false;
        button.removeAttribute("aria-busy");
        render();
      });
    });
  }

  function mediaError(error, what) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Your browser or course page did not allow the " + what.toLowerCase() + ". Check the permission in the address bar.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") return "No " + what.toLowerCase() + " was found.";
    if (name === "NotReadableError") return "The " + what.toLowerCase() + " is in use by another program.";
    return "The " + what.toLowerCase() + " could not be changed.";
  }

  var local = room.localParticipant;
  toggle(ui.mic, function () { return local.isMicrophoneEnabled; }, function (on) { return local.setMicrophoneEnabled(on); }, "Microphone");
  toggle(ui.camera, function () { return local.isCameraEnabled; }, function (on) { return local.setCameraEnabled(on); }, "Camera");
  toggle(ui.screen, function () { return local.isScreenShareEnabled; }, function (on) { return local.setScreenShareEnabled(on, { audio: true }); }, "Screen sharing");
  ui.hand.addEventListener("click", function () {
    if (state === "connected") setHand(!hands.has(cfg.identity));
  });

  /** Browsers may refuse to play sound before the person has clicked something on the page. */
  function showStartAudio() {
    ui.startAudio.hidden = state !== "connected" || room.canPlaybackAudio;
  }
  ui.startAudio.addEventListener("click", function () {
    room.startAudio().then(showStartAudio, showStartAudio);
  });

  // ------------------------------------------------------------------ teacher controls
  if (ui.people) {
    ui.people.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (!button || !cfg.isModerator) return;
      var row = button.closest("[data-identity]");
      var identity = row.getAttribute("data-identity");
      var participant = room.remoteParticipants.get(identity);
      var name = participant ? nameOf(participant) : identity;
      var action = button.getAttribute("data-action");
      if (action === "lower-hand") {
        hands.delete(identity);
        render();
        send({ type: "hand", raised: false, identity: identity }).catch(function (error) {
          announce("Could not lower the hand: " + error.message);
        });
        return;
      }
      if (action === "remove" && !window.confirm("Remove " + name + " from the class?")) return;
      var fields = action === "remove"
        ? { action: "remove", identity: identity }
        : { action: "mute", identity: identity, track: button.getAttribute("data-track") };
      button.disabled = true;
      post(cfg.actionUrl, fields).then(function (response) {
        if (response.ok) {
          announce(action === "remove" ? name + " was removed from the class." : action === "mute-mic" ? name + " is muted." : "The camera of " + name + " is off.");
          return null;
        }
        return errorOf(response, "That did not work (" + response.status + ").").then(announce);
      }, function () {
        announce("That did not work: the tool could not be reached.");
      }).then(function () { button.disabled = false; });
    });
  }

  if (ui.end) {
    ui.end.addEventListener("click", function () {
      if (!window.confirm("End the class for everyone?")) return;
      ui.end.disabled = true;
      post(cfg.endUrl, {}).then(function (response) {
        // The tool answers 303 (to the room page); fetch reports that as an opaque redirect.
        if (response.type === "opaqueredirect" || response.ok) {
          ended = true;
          endedState("You ended the class for everyone.");
          return null;
        }
        ui.end.disabled = false;
        return errorOf(response, "The class could not be ended (" + response.status + ").").then(announce);
      }, function () {
        ui.end.disabled = false;
        announce("The class could not be ended: the tool could not be reached.");
      });
    });
  }

  if (ui.record) {
    ui.record.addEventListener("click", function () {
      if (recordingBusy) return;
      var start = !recording;
      recordingBusy = true;
      ui.record.disabled = true;
      ui.record.setAttribute("aria-busy", "true");
      post(cfg.recordingUrl, { action: start ? "start" : "stop" }).then(function (response) {
        return response.json().then(function (data) { return data || {}; }, function () { return {}; }).then(function (data) {
          if (typeof data.recording === "boolean") setRecording(data.recording);
          if (response.ok) {
            announce(data.recording ? "Recording started." : "Recording stopped.");
            if (state === "connected") {
              send({ type: "recording", active: data.recording === true }).catch(function () {});
            }
            return;
          }
          announce(data.error || ("The recording could not be " + (start ? "started" : "stopped") + " (" + response.status + ")."));
        });
      }, function () {
        announce("The recording could not be " + (start ? "started" : "stopped") + ": the tool could not be reached.");
      }).then(function () {
        recordingBusy = false;
        ui.record.removeAttribute("aria-busy");
        ui.record.disabled = state === "ended";
      });
    });
  }

  function endedState(text) {
    clearTimeout(reconnectTimer);
    setState("ended", text);
    setRecording(false); // LiveKit stops a room's recording when the room closes
    hands.clear();
    room.disconnect().catch(function () {});
    render();
  }

  ui.leave.addEventListener("click", function (event) {
    event.preventDefault();
    leaving = true;
    clearTimeout(reconnectTimer);
    setState("left");
    var href = ui.leave.href;
    var go = function () { window.location.assign(href); };
    var fallback = window.setTimeout(go, 1500);
    room.disconnect().then(function () { clearTimeout(fallback); go(); }, function () { clearTimeout(fallback); go(); });
  });

  // ------------------------------------------------------------------ connecting, reconnecting
  function connect() {
    clearTimeout(reconnectTimer);
    if (!cfg.url) {
      fail("Could not connect: live classes are not set up on this site yet. Please tell your teacher.");
      return Promise.resolve();
    }
    setState(everConnected ? "reconnecting" : "connecting",
      everConnected ? "Connection lost. Reconnecting…" : undefined);
    connecting = true;
    return room.connect(cfg.url, token).then(function () {
      connecting = false;
      everConnected = true;
      reconnectAttempt = 0;
      setState("connected");
      setRecording(room.isRecording === true, true); // LiveKit's word on the room, now
      showStartAudio();
      render();
    }, function (error) {
      connecting = false;
      if (leaving || ended) return;
      if (window.console) console.warn("LiveKit connection failed:", error && error.message);
      if (everConnected) scheduleReconnect();
      else fail(failureText(error));
    });
  }

  /** Ask the tool for a fresh token (the one in hand may have expired), then connect. */
  function reconnectWithFreshToken() {
    return post(cfg.tokenUrl, {}).then(function (response) {
      if (response.ok) {
        return response.json().then(function (data) { if (data && data.token) token = data.token; return true; });
      }
      if (response.status === 409) {
        endedState("The class is not running any more.");
        return false;
      }
      if (response.status === 401 || response.status === 403) {
        return errorOf(response, "Your access to this class has expired.").then(function (text) {
          setState("ended", text + " Open the class again from your course.");
          return false;
        });
      }
      return true; // the tool is unwell: try with the token in hand
    }, function () {
      return true; // the tool cannot be reached either: the connection attempt will tell
    }).then(function (go) {
      if (go) return connect();
      return null;
    });
  }

  function scheduleReconnect() {
    if (reconnectAttempt >= RECONNECT_DELAYS.length) {
      fail(navigator.onLine === false ? failureText(null)
        : "Could not connect to the class's video server again: it stopped answering. Try again in a moment, " +
          "or go back to the course.");
      return;
    }
    var delay = RECONNECT_DELAYS[reconnectAttempt];
    reconnectAttempt += 1;
    setState("reconnecting", "Connection lost. Reconnecting (attempt " + reconnectAttempt + ")…");
    reconnectTimer = window.setTimeout(reconnectWithFreshToken, delay);
  }

  ui.retry.addEventListener("click", function () {
    reconnectAttempt = 0;
    ui.retry.hidden = true;
    reconnectWithFreshToken();
  });

  room
    .on(RoomEvent.ParticipantConnected, function (participant) {
      // Tell the newcomer that this hand is up (data messages are not kept by the server).
      if (hands.has(cfg.identity)) send({ type: "hand", raised: true, to: participant.identity }).catch(function () {});
      render();
    })
    .on(RoomEvent.ParticipantDisconnected, function (participant) {
      hands.delete(participant.identity);
      render();
    })
    .on(RoomEvent.ParticipantMetadataChanged, render)
    .on(RoomEvent.TrackPublished, render)
    .on(RoomEvent.TrackSubscribed, function (track, pub, participant) {
      if (track.kind === "audio") {
        var audio = track.attach();
        audio.setAttribute("data-identity", participant.identity);
        ui.audio.appendChild(audio);
      }
      render();
    })
    .on(RoomEvent.TrackUnsubscribed, function (track) {
      if (track.kind === "audio") track.detach().forEach(function (node) { node.remove(); });
      render();
    })
    .on(RoomEvent.TrackUnpublished, render)
    .on(RoomEvent.TrackMuted, function (pub, participant) {
      if (participant === room.localParticipant && !busy && pub.source === Source.Microphone) announce("Your microphone was muted.");
      render();
    })
    .on(RoomEvent.TrackUnmuted, render)
    .on(RoomEvent.LocalTrackPublished, render)
    .on(RoomEvent.LocalTrackUnpublished, function (pub) {
      if (!busy && pub.source === Source.ScreenShare) announce("Screen sharing stopped.");
      render();
    })
    .on(RoomEvent.ActiveSpeakersChanged, render)
    .on(RoomEvent.ParticipantNameChanged, render)
    .on(RoomEvent.ParticipantPermissionsChanged, render)
    .on(RoomEvent.DataReceived, onData)
    .on(RoomEvent.RecordingStatusChanged, function (isRecording) { setRecording(isRecording === true, true); })
    .on(RoomEvent.AudioPlaybackStatusChanged, showStartAudio)
    .on(RoomEvent.MediaDevicesError, function (error) {
      announce(mediaError(error, "Camera or microphone"));
    })
    .on(RoomEvent.Reconnecting, function () {
      setState("reconnecting", "Connection lost. Reconnecting…");
    })
    .on(RoomEvent.SignalReconnecting, function () {
      setState("reconnecting", "Connection unstable. Reconnecting…");
    })
    .on(RoomEvent.Reconnected, function () {
      setState("connected", "Reconnected to the class.");
      render();
    })
    .on(RoomEvent.Disconnected, function (reason) {
      if (leaving || ended || connecting) return;
      hands.clear();
      if (reason === Reason.ROOM_DELETED || reason === Reason.ROOM_CLOSED) {
        endedState("The class has ended.");
      } else if (reason === Reason.PARTICIPANT_REMOVED) {
        endedState("A teacher removed you from the class.");
      } else if (reason === Reason.DUPLICATE_IDENTITY) {
        endedState("You joined this class in another window, so this one was disconnected.");
      } else if (reason === Reason.CLIENT_INITIATED) {
        setState("left");
      } else if (everConnected) {
        scheduleReconnect();
      }
      render();
    });

  // ------------------------------------------------------------------ start
  (function checkFramePermissions() {
    var framed;
    try { framed = window.self !== window.top; } catch (e) { framed = true; }
    if (!framed || !ui.frameNotice) return;
    var policy = document.permissionsPolicy || document.featurePolicy;
    if (!policy || typeof policy.allowsFeature !== "function") return;
    var wanted = [];
    if (cfg.allow.camera) wanted.push("camera");
    if (cfg.allow.microphone) wanted.push("microphone");
    var blocked = wanted.filter(function (feature) {
      try { return !policy.allowsFeature(feature); } catch (e) { return false; }
    });
    ui.frameNotice.hidden = blocked.length === 0;
  })();

  setState("connecting");
  render();
  if (token) connect();
  else reconnectWithFreshToken(); // a reload: the fragment's token is gone
})();
