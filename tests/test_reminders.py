"""Reminders by e-mail, received by a real SMTP server (aiosmtpd) the tests start: the tool is
served over HTTP with the fake platform (whose NRPS roster carries e-mail addresses) and its
worker sends through SMTP_URL. Moves and cancellations go through the timetable's service (the
teacher's forms for them are another part of the issue)."""
from __future__ import annotations

import email
import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from lti_tool import ConfigurationError, create_app
from lti_tool.extensions import db
from lti_tool.models import EmailMessage, Occasion, Room, ScheduleNotice
from lti_tool.schedule import service as schedule
from tests.conftest import tool_overrides

# The test server takes AUTH over plain SMTP on the loopback (as SMTP_URL allows), which aiosmtpd warns of.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
USER, PASSWORD = "mailer", "p@ss w0rd!"
SERIES = {"schedule_start": "2030-03-04T09:00+01:00", "schedule_minutes": "60", "schedule_weeks": "3"}
EVERYONE = {"teacher1@example.com", "student1@example.com", "student2@example.com", "student3@example.com"}
STUDENTS = EVERYONE - {"teacher1@example.com"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MailServer:
    """A local SMTP server that takes mail from USER/PASSWORD (AUTH over plain SMTP, loopback)
    and keeps what it receives; it can be stopped and started again on the same port."""

    def __init__(self):
        self.port, self.received, self.logins, self.controller = free_port(), [], [], None

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=(auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode()))

    def start(self):
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self.authenticate,
                                     auth_require_tls=False, auth_required=True)
        self.controller.start()

    def stop(self):
        self.controller.stop()

    def to(self, address: str) -> list:
        return [message for rcpt, message in self.received if address in rcpt]

    def subjects(self) -> list[str]:
        return [message["Subject"] for _, message in self.received]

    def clear(self):
        self.received.clear()


@pytest.fixture
def smtp():
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_overrides(smtp):
    return {"SMTP_URL": f"smtp://{USER}:p%40ss%20w0rd%21@127.0.0.1:{smtp.port}"}


def send_mail(live, smtp, expect: int, seconds: float = 10) -> None:
    """Worker passes until the SMTP server has `expect` messages in all (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        live.run_worker()
        if len(smtp.received) >= expect:
            break
        time.sleep(0.05)
    live.run_worker()  # and nothing more is waiting
    assert len(smtp.received) == expect, smtp.subjects()


def pending(live) -> int:
    with live.app.app_context():
        return len(db.session.scalars(select(EmailMessage.id).where(EmailMessage.status == "pending")).all())


def recipients_of(smtp, subject_start: str) -> set[str]:
    return {rcpt for rcpts, message in smtp.received if message["Subject"].startswith(subject_start) for rcpt in rcpts}


def room_of(live, person) -> Room:
    return db.session.get(Room, person.room_id)


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def scheduled_room(live, smtp, custom=SERIES):
    teacher = live.launch("teacher", custom=custom)
    send_mail(live, smtp, 4)
    smtp.clear()
    return teacher


# --- scheduled, moved, cancelled ------------------------------------------------------------------
def test_a_series_from_custom_parameters_is_mailed_to_the_whole_roster(live, smtp):
    live.launch("teacher", custom=SERIES)
    send_mail(live, smtp, 4)
    assert recipients_of(smtp, "Scheduled: ") == EVERYONE, "the NRPS roster, teacher included"
    message = smtp.to("student3@example.com")[0]  # a student who never opened the tool
    assert message["Subject"] == "Scheduled: LTI Live Activity, 3 classes from Mon 4 Mar 08:00 UTC"
    text = body(message)
    for day in ("Monday 4 March 2030, 08:00–09:00 UTC", "Monday 11 March 2030", "Monday 18 March 2030"):
        assert day in text
    assert f"{live.platform.issuer}/mod/lti/view.php?l=1" in text, "Moodle's page of the activity"
    stop = message["List-Unsubscribe"].strip("<>")
    assert stop.startswith(live.url + "/reminders/stop/") and stop in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["From"] == "Live class <noreply@127.0.0.1>" and message["Message-ID"] and message["Date"]
    assert smtp.logins and all(login == (USER.encode(), PASSWORD.encode()) for login in smtp.logins)
    live.run_worker()
    assert len(smtp.received) == 4, "a notice is expanded and sent once"


def test_a_move_is_mailed_with_its_reason_in_the_rooms_time_zone_and_utc(live, smtp):
    teacher = scheduled_room(live, smtp)
    with live.app.app_context():
        room = room_of(live, teacher)
        room.time_zone = "Europe/Paris"
        first = schedule.occasions_of(room)[0]
        schedule.move_occasion(room, first.id, datetime(2030, 3, 5, 14, 0, tzinfo=UTC), 90, "Exam hall booked")
    send_mail(live, smtp, 4)
    assert recipients_of(smtp, "Moved: ") == EVERYONE
    message = smtp.to("student1@example.com")[0]
    assert message["Subject"] == "Moved: LTI Live Activity, Tue 5 Mar 15:00"
    text = body(message)
    assert "Tuesday 5 March 2030, 15:00–16:30 (Europe/Paris; 14:00–15:30 UTC)" in text
    assert "It was: Monday 4 March 2030, 09:00" in text and "Reason: Exam hall booked" in text


def test_a_cancellation_is_mailed_with_its_reason(live, smtp):
    teacher = scheduled_room(live, smtp)
    with live.app.app_context():
        room = room_of(live, teacher)
        second = schedule.occasions_of(room)[1]
        schedule.cancel_occasion(room, second.id, "Bank holiday", rest_of_series=True)
    send_mail(live, smtp, 4)
    message = smtp.to("student2@example.com")[0]
    assert message["Subject"] == "Cancelled: LTI Live Activity, 2 classes from Mon 11 Mar 08:00 UTC"
    assert "Reason: Bank holiday" in body(message) and "Monday 18 March 2030" in body(message)


# --- soon and live ----------------------------------------------------------------------------------
def test_a_class_starting_within_the_reminder_time_gets_one_soon_mail_each(live, smtp):
    start = datetime.now(UTC) + timedelta(minutes=20)
    teacher = live.launch("teacher", custom={"schedule_start": start.isoformat(timespec="minutes"),
                                             "schedule_minutes": "45"})
    send_mail(live, smtp, 8)  # scheduled and soon, to four people
    assert recipients_of(smtp, "Soon: ") == EVERYONE
    for _ in range(3):
        live.run_worker()  # a new worker each time: it looks for classes starting soon at once
    assert len(smtp.received) == 8, "never twice for the same time"
    smtp.clear()
    with live.app.app_context():
        room = room_of(live, teacher)
        schedule.move_occasion(room, schedule.occasions_of(room)[0].id, start + timedelta(minutes=5), 45)
    send_mail(live, smtp, 8)  # moved, and reminded again for the new time
    assert recipients_of(smtp, "Soon: ") == EVERYONE and recipients_of(smtp, "Moved: ") == EVERYONE


def test_a_soon_mail_that_is_stale_by_sending_time_is_skipped(live, smtp):
    start = datetime.now(UTC) + timedelta(minutes=20)
    teacher = live.launch("teacher", custom={"schedule_start": start.isoformat(timespec="minutes")})
    smtp.stop()
    live.run_worker()  # queued, the server is down
    with live.app.app_context():
        room = room_of(live, teacher)
        schedule.cancel_occasion(room, schedule.occasions_of(room)[0].id, "Ill")
    smtp.start()
    deadline = time.monotonic() + 10
    while pending(live) and time.monotonic() < deadline:  # the first ones wait out their backoff
        live.run_worker()
        time.sleep(0.05)
    assert len(smtp.received) == 4 and recipients_of(smtp, "Cancelled: ") == EVERYONE, "only the cancellation"
    with live.app.app_context():
        statuses = db.session.scalars(select(EmailMessage.status)).all()
    assert statuses.count("skipped") == 8, "the scheduled and soon mails, stale by now"


def test_a_teacher_starting_the_class_mails_the_students_once(live, smtp):
    teacher = live.launch("teacher")
    live.launch("student")  # launched: known before the roster is fetched too
    assert teacher.join().status_code == 302
    assert teacher.join().status_code == 302, "joining again is the same start"
    send_mail(live, smtp, 3)
    assert recipients_of(smtp, "Live now: ") == STUDENTS, "not the teacher who started it"
    assert "is live now" in body(smtp.to("student1@example.com")[0])


# --- opting out ---------------------------------------------------------------------------------------
def test_a_student_turns_emails_off_on_the_room_page_and_gets_none(live, smtp):
    teacher = scheduled_room(live, smtp)
    student = live.launch("student")
    page = student.get()
    assert 'id="reminders"' in page.text and "E-mail me about this class: <strong>on</strong>" in page.text
    answer = student.post("/reminders", email="off")
    assert answer.status_code == 303
    page = student.session.get(live.url + answer.headers["Location"])
    assert "Saved." in page.text and "<strong>off</strong>" in page.text and "Turn on" in page.text
    assert teacher.join().status_code == 302
    send_mail(live, smtp, 2)
    assert recipients_of(smtp, "Live now: ") == STUDENTS - {"student1@example.com"}
    student.post("/reminders", email="on")
    with live.app.app_context():
        schedule.cancel_occasion(room_of(live, teacher), schedule.occasions_of(room_of(live, teacher))[2].id)
    send_mail(live, smtp, 6)
    assert "student1@example.com" in recipients_of(smtp, "Cancelled: "), "on again"


def test_the_emails_stop_link_asks_first_then_stops_and_can_be_undone(live, smtp):
    teacher = scheduled_room(live, smtp)
    live.launch("teacher", custom=SERIES)
    with live.app.app_context():
        room = room_of(live, teacher)
        schedule.move_occasion(room, schedule.occasions_of(room)[0].id, datetime(2030, 3, 4, 10, tzinfo=UTC), 60)
    send_mail(live, smtp, 4)
    link = smtp.to("student2@example.com")[0]["List-Unsubscribe"].strip("<>")
    smtp.clear()
    shown = requests.get(link, timeout=10)
    assert shown.status_code == 200 and 'id="stop"' in shown.text
    assert requests.get(link, timeout=10).text.count('id="stop"') == 1, "a GET (a mail scanner) changes nothing"
    stopped = requests.post(link, data={"action": "stop"}, timeout=10)
    assert "you will get no more e-mails" in stopped.text and 'id="resume"' in stopped.text
    assert teacher.join().status_code == 302
    send_mail(live, smtp, 2)
    assert "student2@example.com" not in recipients_of(smtp, "Live now: ")
    resumed = requests.post(link, data={"action": "resume"}, timeout=10)
    assert "you will get e-mails about this class again" in resumed.text
    one_click = requests.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert one_click.status_code == 200 and "no more e-mails" in one_click.text, "RFC 8058 one-click"
    assert requests.get(link[:-3] + "abc", timeout=10).status_code == 404


# --- the mail server down, mail off, secrets ------------------------------------------------------------
def test_a_mail_server_that_is_down_gets_the_mail_later_and_nothing_is_lost(live, smtp, caplog):
    caplog.set_level(logging.INFO)
    smtp.stop()
    live.launch("teacher", custom=SERIES)
    live.run_worker()
    with live.app.app_context():
        waiting = db.session.scalars(select(EmailMessage)).all()
    assert len(waiting) == 4 and all(m.status == "pending" and m.attempts >= 1 and m.last_error for m in waiting)
    assert "ConnectionRefusedError" in waiting[0].last_error
    smtp.start()
    send_mail(live, smtp, 4)
    assert recipients_of(smtp, "Scheduled: ") == EVERYONE
    with live.app.app_context():
        assert set(db.session.scalars(select(EmailMessage.status))) == {"sent"}
    assert PASSWORD not in caplog.text and "p%40ss" not in caplog.text and "w0rd" not in caplog.text
    assert f"smtp://{USER}:…@127.0.0.1:{smtp.port}" in caplog.text, "the server named, without its password"


def test_a_message_a_killed_worker_had_claimed_is_sent_once_its_lease_runs_out(live, smtp):
    from lti_tool.reminders import delivery, service

    live.launch("teacher", custom=SERIES)
    with live.app.app_context():
        service.expand_notices(datetime.now(UTC) + timedelta(hours=1))  # no roster wait
        claimed = db.session.scalars(select(EmailMessage.id)).all()
        assert all(delivery.claim(i) for i in claimed)  # ... and the worker dies here
    live.run_worker()
    assert smtp.received == [], "leased to the dead worker"
    with live.app.app_context():
        for message in db.session.scalars(select(EmailMessage)):
            message.locked_until = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
    send_mail(live, smtp, len(claimed))


@pytest.mark.parametrize("live_overrides", [{}])
def test_without_smtp_url_nothing_is_queued_or_sent_and_pages_are_unchanged(live, smtp):
    teacher = live.launch("teacher", custom=SERIES)
    student = live.launch("student")
    assert teacher.join().status_code == 302
    live.run_worker()
    assert smtp.received == []
    with live.app.app_context():
        assert db.session.scalar(select(ScheduleNotice.id)) is None
        assert db.session.scalar(select(EmailMessage.id)) is None
        assert db.session.scalar(select(Occasion.id)) is not None, "the timetable itself is there"
    assert 'id="reminders"' not in student.get().text and 'id="reminders"' not in teacher.get().text
    assert student.post("/reminders", email="off").status_code == 404


def test_smtp_url_problems_are_named_without_the_password(migrated, database_url, keys_dir, tmp_path):
    config_file = tmp_path / "tool_config.json"
    config_file.write_text("{}")
    for url, problem in (
        ("smtp://mailer:s3cr3t-pw@mail.example.org", "in clear over the network"),
        ("imap://mailer:s3cr3t-pw@mail.example.org", "must start with smtp://"),
        ("smtps://mailer:s3cr3t-pw@mail.example.org:99999", "port"),
    ):
        with pytest.raises(ConfigurationError) as refused:
            create_app(tool_overrides(database_url, keys_dir, config_file, SMTP_URL=url))
        assert problem in str(refused.value) and "s3cr3t" not in str(refused.value)
    app = create_app(tool_overrides(database_url, keys_dir, config_file,
                                    SMTP_URL="smtp+starttls://a%40b:pw@mail.example.org", TOOL_BASE_URL="https://live.school.example"))
    assert app.config["MAIL_FROM"] == "Live class <noreply@live.school.example>"
