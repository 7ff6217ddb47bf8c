"""LiveKit engagement: the classroom's chat messages and raised hands go through the tool
(POST /rooms/<id>/live/message), which checks the sender, sends them with RoomService.SendData
and counts them, so the teacher's attendance page and the participation rule see exactly what
everyone saw. Over real HTTP: the tool, the fake platform, the fake LiveKit."""
from __future__ import annotations

import json

import pytest
from livekit import api
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Engagement
from tests.conftest import LIVEKIT_KEY, LIVEKIT_SECRET
from tests.support import scores_for
from tests.test_engagement import participation_cell
from tests.test_livekit_class import join_token

LINK = "40"
SAM, SALLY = "Sam Student", "Sally Student"


@pytest.fixture
def lk_class(live):
    """A running LiveKit class: the teacher started it; Sam and Sally joined and opened the classroom."""
    live.platform.add_resource_link(LINK, "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id=LINK)
    sam = live.launch("student", resource_link_id=LINK)
    sally = live.launch("student5", resource_link_id=LINK)
    tokens = {"teacher": join_token(teacher)}
    for name, person in (("sam", sam), ("sally", sally)):
        tokens[name] = join_token(person)
        assert person.get("/live").status_code == 200
    return teacher, sam, sally, tokens


def say(person, **fields):
    return person.post("/live/message", **fields)


def counts(live) -> dict[str, tuple]:
    with live.app.app_context():
        return {row.external_user_id: (row.chat_messages, row.raised_hands, row.talk_seconds, row.poll_votes,
                                       row.reactions, row.source)
                for row in db.session.scalars(select(Engagement))}


def payload(request) -> dict:
    return json.loads(request.data.decode())


def run_the_class(live, *present: tuple[str, str, int, int]) -> None:
    """LiveKit's webhooks for the hour: each (identity, name, from minute, to minute), then the end."""
    livekit = live.livekit
    room = next(iter(livekit.rooms))
    t0 = int(livekit.rooms[room].room.creation_time)
    events = [livekit.room_started(room, t0)]
    for identity, name, start, end in present:
        events.append(livekit.participant_joined(room, identity, t0 + start * 60, name))
        events.append(livekit.participant_left(room, identity, t0 + end * 60, name, joined_at=t0 + start * 60))
    events.append(livekit.room_finished(room, t0 + 3600))
    for event in events:
        assert livekit.send_webhook(live.url + "/webhooks/livekit", event).status_code == 200
    live.run_worker()


def test_a_students_chat_message_is_relayed_as_theirs_counted_and_shown_to_the_teacher(live, lk_class):
    teacher, sam, _sally, _ = lk_class
    sam_id = live.public_id("student")
    answer = say(sam, type="chat", text="  Hello everyone  ", to="", **{"from": "someone-else", "role": "moderator"})
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    sent = live.livekit.sent_data[-1]
    assert sent.topic == "classroom" and list(sent.destination_identities) == []
    assert sent.room == next(iter(live.livekit.rooms))
    assert payload(sent) == {"type": "chat", "text": "Hello everyone", "private": False,
                             "from": sam_id, "role": "attendee"}  # the tool's word, not the request's
    # Counted for Sam alone; what LiveKit cannot measure stays NULL ("not available").
    assert counts(live)[sam_id] == (1, 0, None, None, None, "livekit")
    run_the_class(live, (sam_id, SAM, 0, 60))
    cell = participation_cell(teacher.get("/attendance").text, SAM)
    assert cell == "talk time not available · 1 message · 0 hands · poll answers not available · " \
                   "reactions not available"


def test_raised_hands_are_counted_and_a_teacher_lowers_one(live, lk_class):
    teacher, sam, _sally, _ = lk_class
    sam_id = live.public_id("student")
    assert say(sam, type="hand", raised="true").status_code == 200
    assert payload(live.livekit.sent_data[-1]) == {"type": "hand", "raised": True, "from": sam_id, "role": "attendee"}
    assert say(sam, type="hand", raised="false").status_code == 200  # lowering is not a raise
    assert say(sam, type="hand", raised="true").status_code == 200
    teacher_id = live.public_id("teacher")
    assert say(sam, type="hand", raised="true", to=teacher_id).status_code == 200  # told again to a newcomer
    assert list(live.livekit.sent_data[-1].destination_identities) == [teacher_id]
    assert say(teacher, type="hand", raised="false", identity=sam_id).status_code == 200
    assert payload(live.livekit.sent_data[-1]) == {"type": "hand", "raised": False, "identity": sam_id,
                                                   "from": teacher_id, "role": "moderator"}
    assert counts(live)[sam_id][:2] == (0, 2)


def test_a_private_message_goes_to_its_one_recipient(live, lk_class):
    teacher, sam, _sally, _ = lk_class
    teacher_id = live.public_id("teacher")
    assert say(sam, type="chat", text="A question", to=teacher_id).status_code == 200
    sent = live.livekit.sent_data[-1]
    assert list(sent.destination_identities) == [teacher_id]
    assert payload(sent)["private"] is True and payload(sent)["from"] == live.public_id("student")
    assert say(sam, type="chat", text="Hi", to="not-in-this-class").status_code == 400


def test_locked_chats_are_refused_and_not_counted(live, lk_class):
    teacher, sam, _sally, _ = lk_class
    # The settings form: class chat and private chat between students left unticked.
    assert teacher.post("/settings", students_microphone="on").status_code == 303
    before = len(live.livekit.sent_data)
    sam_id, sally_id, teacher_id = live.public_id("student"), live.public_id("student5"), live.public_id("teacher")
    answer = say(sam, type="chat", text="Hello")
    assert answer.status_code == 403 and "class chat" in answer.json()["error"]
    assert say(sam, type="chat", text="psst", to=sally_id).status_code == 403
    assert len(live.livekit.sent_data) == before
    assert counts(live)[sam_id][:2] == (0, 0)
    # A student may still write privately to a teacher, and the teacher to everyone.
    assert say(sam, type="chat", text="May I ask?", to=teacher_id).status_code == 200
    assert say(teacher, type="chat", text="Yes").status_code == 200
    assert counts(live)[sam_id][0] == 1 and counts(live)[teacher_id][0] == 1


def test_a_student_may_not_lower_a_hand_or_send_the_recording_state(live, lk_class):
    teacher, sam, _sally, _ = lk_class
    before = len(live.livekit.sent_data)
    assert say(sam, type="hand", raised="false", identity=live.public_id("student5")).status_code == 403
    assert say(sam, type="recording", active="true").status_code == 403
    assert len(live.livekit.sent_data) == before
    assert say(teacher, type="recording", active="true").status_code == 200
    assert payload(live.livekit.sent_data[-1]) == {"type": "recording", "active": True,
                                                   "from": live.public_id("teacher"), "role": "moderator"}


@pytest.mark.parametrize("fields", [
    {"type": "chat", "text": "x" * 1001},
    {"type": "chat", "text": "   "},
    {"type": "shout", "text": "hi"},
    {"type": "hand", "raised": "maybe"},
])
def test_bad_messages_are_refused_with_400_and_nothing_sent(live, lk_class, fields):
    _teacher, sam, _sally, _ = lk_class
    answer = say(sam, **fields)
    assert answer.status_code == 400 and answer.json()["error"]
    assert live.livekit.sent_data == [] and counts(live)[live.public_id("student")][:2] == (0, 0)


def test_a_message_of_exactly_1000_characters_is_sent(live, lk_class):
    _teacher, sam, _sally, _ = lk_class
    assert say(sam, type="chat", text="x" * 1000).status_code == 200
    assert len(payload(live.livekit.sent_data[-1])["text"]) == 1000


def test_a_forged_or_missing_ticket_is_refused(live, lk_class):
    _teacher, sam, _sally, _ = lk_class
    url = sam.url("/live/message")
    forged = sam.ticket[:-4] + ("AAAA" if not sam.ticket.endswith("AAAA") else "BBBB")
    for data in ({"type": "chat", "text": "hi"}, {"t": forged, "type": "chat", "text": "hi"}):
        answer = live_post(url, data)
        assert answer.status_code in (401, 403), answer.text
        assert answer.headers["Content-Type"].startswith("application/json")
    assert live.livekit.sent_data == []


def live_post(url, data):
    import requests

    return requests.post(url, data=data, allow_redirects=False)  # no session: nothing but the form


def test_join_tokens_no_longer_grant_publishing_data(live, lk_class):
    verifier = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET)
    for token in lk_class[3].values():
        claims = verifier.verify(token)
        assert claims.video.room_join and claims.video.can_publish_data is False


def test_participation_rule_counts_who_wrote_and_never_penalises_silence_livekit_cannot_measure(live, lk_class):
    teacher, sam, _sally, _ = lk_class
    assert teacher.post("/grading", participation_required="on", absent_gets_zero="on").status_code == 303
    assert say(sam, type="chat", text="Here!").status_code == 200
    sam_id, sally_id = live.public_id("student"), live.public_id("student5")
    run_the_class(live, (sam_id, SAM, 0, 60), (sally_id, SALLY, 0, 30))
    # Sam wrote: the class counts. Sally wrote nothing, but may have spoken (LiveKit does not
    # report talk time): her minutes count, the rule does not apply.
    assert [s["scoreGiven"] for s in scores_for(live.platform, "4")] == [100.0]
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [50.0]
    assert scores_for(live.platform, "5")[-1]["comment"] == "Attended 30 of 60 minutes"
    assert counts(live)[sally_id][:2] == (0, 0)
    page = teacher.get("/attendance").text
    assert participation_cell(page, SALLY).startswith("talk time not available · 0 messages · 0 hands")
    assert "did not speak or write" not in page


def test_an_identity_that_is_too_long_is_refused(live, lk_class):
    teacher, _sam, _sally, _ = lk_class
    assert say(teacher, type="hand", raised="false", identity="x" * 256).status_code == 400
    assert live.livekit.sent_data == []
