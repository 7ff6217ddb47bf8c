"""The tool's own LiveKit classroom page in headless Chromium.

The tool is served over real HTTP with LIVEKIT_URL pointing at the FakeLiveKit (tests/fakes/
livekit_server.py): its RoomService answers the tool's calls (create the room on `join`, mute,
remove, end), but it speaks no WebRTC signalling, so the page's WebSocket to it fails. The page
must get as far as connecting with the token the tool gave it, say that it could not connect,
and otherwise work: the controls each role should have, the participant list, chat and raised
hands (remote participants, and the classroom messages the tool relays with SendData, are handed
to the page's livekit-client Room as the SDK would hand them; what the page sends goes to the
tool's messageUrl, whose SendData the fake records), teacher actions through the tool, leave, a phone screen and
an LMS iframe with and without camera permission.

Skipped when Debian's Chromium (/usr/bin/chromium) or Playwright is missing.
"""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser_support import expect
from tests.livekit_classroom import (  # noqa: F401  (classroom is a fixture)
    DESKTOP,
    PHONE,
    VENDOR_SCRIPT,
    Watched,
    add_remote,
    classroom,
    no_horizontal_scroll,
    open_page,
    overflowing_controls,
    receive_data,
    wait_until_connection_failed,
)


def test_teacher_page_connects_with_its_token_and_has_every_teacher_control(browser, classroom):
    teacher = classroom.join(classroom.launch("teacher"))
    meeting = classroom.meeting_id(teacher.room_id)
    assert classroom.livekit.count("CreateRoom") == 1, "join starts the LiveKit room through the tool"
    watched = open_page(browser, classroom, teacher, **DESKTOP)
    page = watched.page

    wait_until_connection_failed(watched)
    # The SDK is the tool's own copy, and it tried to connect with exactly the token it was given.
    assert page.evaluate("() => typeof window.LivekitClient.Room") == "function"
    scripts = page.evaluate("() => [...document.scripts].map(s => s.src).filter(Boolean)")
    assert f"{classroom.tool.url}{VENDOR_SCRIPT}" in [src.split("?")[0] for src in scripts]  # ?v=<version>
    allowed = (classroom.tool.url, classroom.livekit.url, "data:")
    assert not [r.url for r in watched.requests if not r.url.startswith(allowed)], \
        "the page loads nothing from anywhere else (no CDN)"
    assert watched.websockets, "the page never opened a WebSocket to LiveKit"
    signal = urlsplit(watched.websockets[0])
    assert f"{signal.scheme}://{signal.netloc}" == classroom.livekit.ws_url and re.search(r"/rtc(/v\d+)?$", signal.path)
    assert parse_qs(signal.query)["access_token"] == [teacher.token]
    # The token left the address bar (and the history) once read; the ticket stays.
    address = page.evaluate("() => location.href")
    assert "lk=" not in address and "#" not in address and "t=" in urlsplit(address).query
    page_ticket = page.evaluate("() => window.liveClassroom.config.ticket")

    # "Try again" asks the tool for a fresh token (ticket as form data, no cookies) and connects with it.
    with page.expect_response(re.compile(r"/live/token$")) as answered, page.expect_websocket() as retried:
        page.locator("#lk-retry").click()
    assert answered.value.status == 200
    assert parse_qs(answered.value.request.post_data) == {"t": [page_ticket]}
    assert "cookie" not in {k.lower() for k in answered.value.request.all_headers()}
    assert parse_qs(urlsplit(retried.value.url).query)["access_token"] == [answered.value.json()["token"]]
    wait_until_connection_failed(watched)

    # Every control a teacher has: own media, hand, leave, end; the chat.
    for control in ("#toggle-mic", "#toggle-camera", "#toggle-screen", "#toggle-hand"):
        expect(page.locator(control)).to_be_visible()
        expect(page.locator(control)).to_have_attribute("aria-pressed", "false")
        expect(page.locator(control)).to_be_disabled()  # not connected: nothing to publish to
    expect(page.locator("#end-class")).to_have_text(re.compile("End class for everyone"))
    expect(page.locator("#leave")).to_have_attribute("href", classroom.return_url(teacher.room_id, "teacher"))
    expect(page.locator("#chat-panel")).to_be_visible()
    expect(page.locator("#chat-input")).to_be_disabled()

    # The participant list and the grid start with the teacher, highlighted as teacher.
    me = page.evaluate("() => window.liveClassroom.config.identity")
    rows = page.locator("#participant-list > li")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-identity", me)
    expect(rows.first).to_contain_text("Terry Teacher (you)")
    expect(rows.first.locator(".lk-badge-teacher")).to_be_visible()
    expect(rows.first.locator("button")).to_have_count(0)  # no mute/remove on oneself
    expect(page.locator("#lk-grid .lk-tile.is-teacher")).to_have_count(1)
    expect(page.locator("#participant-count")).to_have_text("1")

    # A student arrives with the microphone on: the teacher gets Mute and Remove for them.
    classroom.livekit.join(meeting, "u-sam", "Sam Student", '{"role":"attendee"}')
    mic = classroom.livekit.publish(meeting, "u-sam", "MICROPHONE")
    add_remote(page, "u-sam", "Sam Student", "attendee", mic)
    sam = page.locator('#participant-list > li[data-identity="u-sam"]')
    expect(sam).to_contain_text("Sam Student")
    expect(sam.locator(".lk-badge-teacher")).to_have_count(0)
    expect(page.locator("#participant-count")).to_have_text("2")
    expect(page.locator("#lk-grid .lk-tile")).to_have_count(2)
    expect(page.locator("#lk-grid .lk-tile").first).to_have_class(re.compile("is-teacher"))

    # Their raised hand and chat arrive as data messages.
    receive_data(page, "u-sam", {"type": "hand", "raised": True})
    expect(sam.locator(".lk-badge-hand")).to_be_visible()
    expect(page.locator("#lk-announce")).to_have_text("Sam Student raised their hand.")
    receive_data(page, "u-sam", {"type": "chat", "text": "<b>Hello</b> from Sam"})
    message = page.locator("#chat-log > li").last
    expect(message).to_contain_text("Sam Student")
    expect(message.locator(".lk-msg-text")).to_have_text("<b>Hello</b> from Sam")  # text, never markup
    receive_data(page, "u-sam", {"type": "chat", "text": "another topic"}, topic="somebody-else")
    receive_data(page, "u-sam", {"type": "hand", "raised": False, "identity": me})  # not a student's to do
    # Straight from a browser (not through the tool), a message could claim anything: ignored.
    receive_data(page, "u-sam", {"type": "chat", "text": "forged", "from": me, "role": "moderator"}, peer=True)
    expect(page.locator("#chat-log > li")).to_have_count(1)
    page.screenshot(path="/tmp/lk-teacher.png", full_page=True)

    # A dropped connection and its recovery (livekit-client's own events) are said clearly.
    state = page.locator("#lk-connection")
    page.evaluate("() => window.liveClassroom.room.emit(LivekitClient.RoomEvent.Reconnecting)")
    expect(state).to_have_attribute("data-state", "reconnecting")
    expect(state).to_have_text("Connection lost. Reconnecting…")
    expect(page.locator("#toggle-mic")).to_be_disabled()
    page.evaluate("() => window.liveClassroom.room.emit(LivekitClient.RoomEvent.Reconnected)")
    expect(state).to_have_attribute("data-state", "connected")
    expect(state).to_have_text("Reconnected to the class.")
    expect(page.locator("#toggle-mic")).to_be_enabled()
    expect(page.locator("#chat-input")).to_be_enabled()

    # The teacher's chat, hand and lowering Sam's hand go through the tool (messageUrl), which
    # relays them to the room with SendData as the teacher's; the tool's echo of one's own message
    # adds no second line.
    page.locator("#chat-input").fill("Welcome, Sam")
    with page.expect_response(re.compile(r"/live/message$")) as answered:
        page.locator("#chat-send").click()
    assert answered.value.status == 200
    assert parse_qs(answered.value.request.post_data, keep_blank_values=True) == {
        "t": [page_ticket], "type": ["chat"], "text": ["Welcome, Sam"], "to": [""]}
    assert "cookie" not in {k.lower() for k in answered.value.request.all_headers()}
    relayed = classroom.livekit.sent_data[-1]
    assert relayed.topic == "classroom" and relayed.room == meeting
    assert json.loads(relayed.data) == {"type": "chat", "text": "Welcome, Sam", "private": False, "from": me,
                                        "role": "moderator"}
    mine = page.locator("#chat-log > li").last
    expect(mine).to_contain_text("You")
    page.evaluate("""(data) => window.liveClassroom.room.emit(LivekitClient.RoomEvent.DataReceived,
        new TextEncoder().encode(data), undefined, 0, "classroom")""", relayed.data.decode())
    expect(page.locator("#chat-log > li")).to_have_count(2)
    with page.expect_response(re.compile(r"/live/message$")) as answered:
        page.locator("#toggle-hand").click()
    assert parse_qs(answered.value.request.post_data)["raised"] == ["true"]
    expect(page.locator("#toggle-hand")).to_have_attribute("aria-pressed", "true")
    with page.expect_response(re.compile(r"/live/message$")) as answered:
        sam.get_by_role("button", name="Lower the hand of Sam Student").click()
    assert answered.value.status == 200
    assert json.loads(classroom.livekit.sent_data[-1].data)["identity"] == "u-sam"
    expect(sam.locator(".lk-badge-hand")).to_have_count(0)

    # Mute goes through the tool (ticket as form data, no cookies) to LiveKit's MutePublishedTrack.
    with page.expect_request(re.compile(r"/live/action$")) as sent:
        sam.get_by_role("button", name="Mute Sam Student").click()
    assert parse_qs(sent.value.post_data) == {"t": [page_ticket], "action": ["mute"], "identity": ["u-sam"],
                                              "track": [mic]}
    assert "cookie" not in {k.lower() for k in sent.value.all_headers()}
    expect(page.locator("#lk-announce")).to_have_text("Sam Student is muted.")
    muted = classroom.livekit.last("MutePublishedTrack").body
    assert (muted["room"], muted["identity"], muted["trackSid"], muted["muted"]) == (meeting, "u-sam", mic, True)

    # Remove asks first, then goes through the tool to RemoveParticipant.
    page.once("dialog", lambda d: d.accept())
    with page.expect_request(re.compile(r"/live/action$")) as sent:
        sam.get_by_role("button", name="Remove Sam Student from the class").click()
    assert parse_qs(sent.value.post_data)["action"] == ["remove"]
    expect(page.locator("#lk-announce")).to_have_text("Sam Student was removed from the class.")
    assert classroom.livekit.last("RemoveParticipant").body["identity"] == "u-sam"

    # The keyboard reaches End class; cancelling the confirmation ends nothing.
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.locator("#leave").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "end-class"
    page.keyboard.press("Enter")
    expect(page.locator("#end-class")).to_be_enabled()
    assert dialogs == ["End the class for everyone?"] and classroom.livekit.count("DeleteRoom") == 0

    page.once("dialog", lambda d: d.accept())
    page.locator("#end-class").click()
    expect(page.locator("#lk-connection")).to_have_attribute("data-state", "ended")
    expect(page.locator("#lk-connection")).to_contain_text("You ended the class for everyone.")
    assert classroom.livekit.count("DeleteRoom") == 1 and meeting not in classroom.livekit.rooms

    assert watched.errors == [], watched.errors
    assert watched.expected_errors, "the failed signal connection should have been reported"
    assert watched.http_failures_outside_livekit() == []

    # Leave returns to the LMS (its return URL; the fake Moodle has no page there).
    page.locator("#leave").click()
    page.wait_for_url(classroom.return_url(teacher.room_id, "teacher"))


def test_locked_student_on_a_phone_gets_no_camera_screen_or_chat(browser, classroom):
    teacher = classroom.launch("teacher")
    # The settings form says what students may do: camera and class chat left unticked.
    classroom.save_settings(teacher, students_microphone=True, students_see_cameras=True,
                            students_private_chat=True, students_see_people=True)
    classroom.join(teacher)  # the teacher starts the class; the student may join now
    student = classroom.join(classroom.launch("student"))
    watched = open_page(browser, classroom, student, **PHONE)
    page = watched.page

    wait_until_connection_failed(watched)
    assert parse_qs(urlsplit(watched.websockets[0]).query)["access_token"] == [student.token]
    expect(page.locator("#toggle-camera")).to_have_count(0)
    expect(page.locator("#toggle-screen")).to_have_count(0)
    expect(page.locator("#chat-panel")).to_have_count(0)
    expect(page.locator("#end-class")).to_have_count(0)
    expect(page.locator("#toggle-mic")).to_be_visible()
    expect(page.locator("#toggle-hand")).to_be_visible()
    rows = page.locator("#participant-list > li")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Sam Student (you)")
    expect(rows.first.locator(".lk-badge-teacher")).to_have_count(0)

    # The teacher's tile comes first and stands out; a student has no actions on anyone.
    add_remote(page, "u-terry", "Terry Teacher", "moderator", "TR_terrymic")
    teacher_tile = page.locator("#lk-grid .lk-tile").first
    expect(teacher_tile).to_have_class(re.compile("is-teacher"))
    expect(teacher_tile.locator(".lk-badge-teacher")).to_be_visible()
    expect(page.locator("#participant-list button")).to_have_count(0)
    receive_data(page, "u-terry", {"type": "hand", "raised": False, "identity": "nobody"})  # harmless

    # One column, nothing sideways, and the controls are on screen without scrolling.
    width, client = no_horizontal_scroll(page)
    assert width <= client, f"the classroom scrolls sideways on a phone: {width} > {client}"
    tiles = page.locator("#lk-grid .lk-tile")
    first, second = tiles.nth(0).bounding_box(), tiles.nth(1).bounding_box()
    assert second["y"] >= first["y"] + first["height"] - 1, "tiles should stack in one column"
    for control in ("#toggle-mic", "#toggle-hand", "#leave"):
        box = page.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, f"{control} off screen: {box}"
        assert box["y"] + box["height"] <= 667, f"{control} is below the screen: {box}"
        assert box["height"] >= 44, f"{control} is {box['height']}px high, a finger needs 44"
    assert overflowing_controls(page) == []
    expect(page.locator("#lk-start-audio")).to_be_hidden()  # only once connected, if sound is blocked
    page.screenshot(path="/tmp/lk-phone.png")

    # The teacher ends the class: LiveKit disconnects everyone with ROOM_DELETED.
    page.evaluate("() => window.liveClassroom.room.emit(LivekitClient.RoomEvent.Disconnected,"
                  " LivekitClient.DisconnectReason.ROOM_DELETED)")
    expect(page.locator("#lk-connection")).to_have_attribute("data-state", "ended")
    expect(page.locator("#lk-connection")).to_have_text("The class has ended.")

    assert watched.errors == [], watched.errors
    assert watched.http_failures_outside_livekit() == []
    page.locator("#leave").tap()
    page.wait_for_url(classroom.return_url(student.room_id, "student"))


def test_teacher_page_fits_a_phone_with_every_control(browser, classroom):
    teacher = classroom.join(classroom.launch("teacher"))
    watched = open_page(browser, classroom, teacher, **PHONE)
    page = watched.page
    wait_until_connection_failed(watched)
    add_remote(watched.page, "u-sam", "Sam Student With A Rather Long Name", "attendee", "TR_sammic")
    expect(page.locator('#participant-list li[data-identity="u-sam"] button')).to_have_count(2)
    width, client = no_horizontal_scroll(page)
    assert width <= client, f"the teacher's classroom scrolls sideways on a phone: {width} > {client}"
    for control in ("#toggle-mic", "#toggle-camera", "#toggle-screen", "#toggle-hand", "#leave", "#end-class"):
        box = page.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, f"{control} off screen: {box}"
        assert box["y"] + box["height"] <= 667, f"{control} is below the screen: {box}"
    assert overflowing_controls(page) == []
    page.screenshot(path="/tmp/lk-teacher-phone.png")
    assert watched.errors == [], watched.errors


@pytest.mark.parametrize("allow, warned", [("camera; microphone; display-capture; autoplay", False), ("", True)])
def test_in_the_lms_iframe_the_page_says_when_the_frame_blocks_camera_and_microphone(browser, classroom, allow, warned):
    teacher = classroom.join(classroom.launch("teacher"))
    classroom.frame_target.update(url=teacher.page_url, allow=allow)
    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(10_000)
    watched = Watched(classroom.livekit.ws_url).watch(context.new_page())
    watched.page.goto(classroom.platform.activity_url())
    frame = watched.page.frame(name="tool")
    expect(frame.locator("#lk-connection")).to_have_attribute("data-state", "failed", timeout=20_000)
    notice = frame.locator("#lk-frame-notice")
    if warned:
        expect(notice).to_be_visible()
        expect(notice.get_by_role("button", name="Open the class in its own window")).to_be_visible()
        expect(notice.locator("form")).to_have_attribute("target", "_blank")
    else:
        expect(notice).to_be_hidden()
    assert watched.errors == [], watched.errors
    context.close()
