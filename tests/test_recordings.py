"""Recordings on the room pages (docs/recordings.md), over real HTTP against the fake BBB: a
class ends, BBB processes its recording and calls the tool's recording-ready callback, and the
room page's `recordings` element lists it — published ones for everyone, unpublished ones for
teachers only. Teachers publish, unpublish, rename and delete (the fake server's state changes,
its checksums checked like bbb-web's); students cannot; retention deletes old ones.
"""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import ClassRecording
from tests.conftest import run_cli
from tests.support import ClassRun

DAY_MS = 86_400_000


@pytest.fixture
def live_overrides() -> dict:
    # A long interval: only the ready callback (or the interval) makes the tool ask again.
    return {"RECORDINGS_CHECK_SECONDS": "3600"}


def recordings_section(page: str) -> str:
    found = re.search(r'<section[^>]*id="recordings".*?</section>', page, re.S)
    assert found, "the page has no element with id recordings"
    return found.group(0)


def playback_links(person) -> list[str]:
    response = person.get()
    assert response.status_code == 200
    links = re.findall(r'<a class="playback" href="([^"]+)"', recordings_section(response.text))
    return [html.unescape(link) for link in links]


def playback_of(live, record_id: str) -> str:
    return live.bbb.recording(record_id).playback[0][1]


def finished_class(live):
    """A teacher runs a class and ends it; returns the teacher and the run."""
    teacher = live.launch("teacher")
    run = ClassRun(live, teacher)
    assert teacher.post("/end").status_code == 303
    return teacher, run


def recording_ready(live, run: ClassRun, **kw) -> str:
    """BBB finishes the run's recording and calls the tool back; returns the record id."""
    record_id = live.bbb.record_run(run.meeting_id, **kw)
    response = live.bbb.send_recording_ready(None, run.meeting_id, record_id)
    assert response.status_code == 200, response.text
    return record_id


def test_a_finished_class_recording_is_listed_with_date_length_and_playback_link(live):
    teacher, run = finished_class(live)
    assert playback_links(teacher) == []
    record_id = recording_ready(live, run, minutes=45)
    page = teacher.get().text
    section = recordings_section(page)
    assert playback_links(teacher) == [playback_of(live, record_id)]
    assert "45 min" in section
    started = datetime.fromtimestamp(run.t0 / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f'datetime="{started}"' in section


def test_students_see_published_recordings_and_teachers_also_unpublished_ones(live):
    teacher, run = finished_class(live)
    published = recording_ready(live, run)
    hidden = live.bbb.add_recording(run.meeting_id, name="Rehearsal", published=False)
    live.bbb.send_recording_ready(None, run.meeting_id, hidden)
    student = live.launch("student")
    assert playback_links(student) == [playback_of(live, published)]
    assert set(playback_links(teacher)) == {playback_of(live, published), playback_of(live, hidden)}
    assert "Only teachers see it" in recordings_section(teacher.get().text)


def test_the_ready_callback_makes_a_new_recording_appear_at_once(live):
    teacher, run = finished_class(live)
    assert playback_links(teacher) == []  # the tool asked BBB: nothing yet
    record_id = live.bbb.record_run(run.meeting_id)
    assert playback_links(teacher) == []  # within RECORDINGS_CHECK_SECONDS: the tool's copy
    asked = live.bbb.count("getRecordings")
    assert live.bbb.send_recording_ready(None, run.meeting_id, record_id).status_code == 200
    assert playback_links(teacher) == [playback_of(live, record_id)]
    assert live.bbb.count("getRecordings") == asked + 1
    playback_links(live.launch("student"))
    assert live.bbb.count("getRecordings") == asked + 1  # later views read the copy


def test_a_teacher_unpublishes_publishes_renames_and_deletes_a_recording(live):
    teacher, run = finished_class(live)
    record_id = recording_ready(live, run)
    student = live.launch("student")
    link = playback_of(live, record_id)

    assert teacher.post("/recordings/publish", record_id=record_id, publish="false").status_code == 303
    assert live.bbb.recording(record_id).published is False
    assert playback_links(student) == [] and playback_links(teacher) == [link]

    assert teacher.post("/recordings/publish", record_id=record_id, publish="true").status_code == 303
    assert live.bbb.recording(record_id).state == "published"
    assert playback_links(student) == [link]

    assert teacher.post("/recordings/rename", record_id=record_id, name="  Fractions,   part 2 ").status_code == 303
    assert live.bbb.recording(record_id).metadata["name"] == "Fractions, part 2"
    assert "Fractions, part 2" in recordings_section(student.get().text)

    answer = teacher.post("/recordings/delete", record_id=record_id)
    assert answer.status_code == 303 and "recording=deleted" in answer.headers["Location"]
    assert live.bbb.recording(record_id) is None
    assert playback_links(teacher) == [] and playback_links(student) == []


def test_students_cannot_change_recordings(live):
    teacher, run = finished_class(live)
    record_id = recording_ready(live, run)
    student = live.launch("student")
    for path, data in (("/recordings/publish", {"publish": "false"}), ("/recordings/rename", {"name": "Mine"}),
                       ("/recordings/delete", {})):
        assert student.post(path, record_id=record_id, **data).status_code == 403
    recording = live.bbb.recording(record_id)
    assert recording.published and "name" not in recording.metadata
    assert live.bbb.count("publishRecordings") == live.bbb.count("deleteRecordings") == 0


def test_bad_recording_forms_are_refused_readably_and_change_nothing(live):
    teacher, run = finished_class(live)
    record_id = recording_ready(live, run)
    assert teacher.post("/recordings/delete", record_id="not-a-recording-of-this-room").status_code == 404
    assert teacher.post("/recordings/delete").status_code == 400
    assert teacher.post("/recordings/publish", record_id=record_id, publish="maybe").status_code == 400
    refused = teacher.post("/recordings/rename", record_id=record_id, name="   ")
    assert refused.status_code == 400 and "1 to 200 characters" in refused.text
    assert live.bbb.recording(record_id).published and live.bbb.count("updateRecordings") == 0


def test_a_recording_of_another_room_cannot_be_deleted_from_this_one(live):
    _, run = finished_class(live)
    record_id = recording_ready(live, run)
    live.platform.add_resource_link("other", "Another class")
    other_teacher = live.launch("teacher", resource_link_id="other")
    assert other_teacher.post("/recordings/delete", record_id=record_id).status_code == 404
    assert live.bbb.recording(record_id) is not None


def test_a_recording_deleted_on_the_server_disappears_from_the_page(live):
    teacher, run = finished_class(live)
    record_id = recording_ready(live, run)
    live.bbb.recordings.clear()  # an administrator deleted it on BBB
    live.bbb.send_recording_ready(None, run.meeting_id, record_id)
    assert playback_links(teacher) == []


@pytest.mark.parametrize("live_overrides", [{"RECORDINGS_CHECK_SECONDS": "3600", "RECORDING_RETENTION_DAYS": "30"}])
def test_retention_deletes_old_recordings_and_teachers_see_the_date_before(live):
    teacher, run = finished_class(live)
    recent = recording_ready(live, run)
    old = live.bbb.add_recording(run.meeting_id, name="Last term")
    live.bbb.recording(old).start_time -= 40 * DAY_MS
    live.bbb.send_recording_ready(None, run.meeting_id, old)
    page = recordings_section(teacher.get().text)
    removal = (datetime.fromtimestamp(run.t0 / 1000, UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "Will be removed on" in page and f'datetime="{removal}"' in page
    assert "Will be removed on" not in recordings_section(live.launch("student").get().text)

    live.run_worker()
    assert live.bbb.recording(old) is None and live.bbb.recording(recent) is not None
    assert playback_links(teacher) == [playback_of(live, recent)]


def test_a_platform_keeps_recordings_for_its_own_number_of_days(live, second_school):
    code, output = run_cli(live.app, "platform", "set", "--issuer", second_school.issuer, "--client-id",
                           second_school.client_id, "RECORDING_RETENTION_DAYS=2")
    assert code == 0, output
    from tests.conftest import launch_at

    teacher = launch_at(live, second_school, "teacher")
    run = ClassRun(live, teacher)
    old = live.bbb.add_recording(run.meeting_id)
    live.bbb.recording(old).start_time -= 3 * DAY_MS
    live.bbb.send_recording_ready(None, run.meeting_id, old)
    assert "Will be removed on" in recordings_section(teacher.get().text)
    own_platform = live.launch("teacher")  # the environment keeps recordings (0)
    assert "Will be removed on" not in recordings_section(own_platform.get().text)
    live.run_worker()
    assert live.bbb.recording(old) is None
    with live.app.app_context():
        row = db.session.scalar(select(ClassRecording).where(ClassRecording.record_id == old))
        assert row.deleted_at is not None


LIVEKIT_RECORDING = {"RECORDINGS_CHECK_SECONDS": "3600", "LIVEKIT_RECORDING_FILEPATH": "recordings/{room_name}.mp4",
                     "LIVEKIT_RECORDING_BASE_URL": "https://media.example.edu/lk/"}


@pytest.mark.parametrize("live_overrides", [LIVEKIT_RECORDING])
def test_livekit_egress_files_are_listed_and_publishing_and_deleting_stay_in_the_tool(live):
    live.platform.add_resource_link("lk", "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id="lk")
    assert teacher.join().status_code == 302
    egress_id = teacher.post("/live/recording", action="start").json()["egress_id"]
    assert playback_links(teacher) == []
    assert teacher.post("/live/recording", action="stop").status_code == 200
    ended = live.livekit.egress_ended(egress_id, at=1_715_265_401)
    filename = ended["egressInfo"]["fileResults"][0]["filename"]
    assert live.livekit.send_webhook(live.url + "/webhooks/livekit", ended).status_code == 200
    link = "https://media.example.edu/lk/" + filename
    student = live.launch("student", resource_link_id="lk")
    assert playback_links(teacher) == [link] and playback_links(student) == [link]

    assert teacher.post("/recordings/publish", record_id=egress_id, publish="false").status_code == 303
    assert playback_links(student) == [] and playback_links(teacher) == [link]
    assert teacher.post("/recordings/delete", record_id=egress_id).status_code == 303
    live.livekit.send_webhook(live.url + "/webhooks/livekit", ended)  # Egress still lists it: it stays gone
    assert playback_links(teacher) == []
    assert egress_id in live.livekit.egresses  # the file is Egress's to remove
