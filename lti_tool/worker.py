"""The background worker: deliveries, rosters, the polling safety net, stuck events, end
callbacks to confirm, the pruning of events for meetings the tool does not know, and the
reminders' e-mails (where SMTP_URL is set).

`flask --app wsgi worker` runs it in its own process (as many as you like, on any machine);
the embedded server (`flask --app wsgi serve`) runs one in a thread. Each pass is short and
idempotent, so a worker can be killed at any moment: whatever it was doing is redone by the
next pass of any worker.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask import Flask

from .extensions import db
from .logsafe import quoted

log = logging.getLogger(__name__)

IDLE_SLEEP_SECONDS = 0.5  # a queued score is picked up within about a second
INBOX_IDLE_SECONDS = 0.1  # one indexed query per idle tenth of a second: events wait little
ROSTER_RETRY_SECONDS = 60
PRUNE_EVERY_SECONDS = 3600  # pruning is one cheap DELETE, but there is no hurry either
RETENTION_EVERY_SECONDS = 600  # old recordings: a few indexed reads, deleted within minutes
SOON_EVERY_SECONDS = 30  # "starts soon" notices: one indexed query per worker at most this often


class Worker:
    def __init__(self, app: Flask):
        self.app = app
        self.poll_every = float(app.config["ATTENDANCE_POLL_SECONDS"])
        self._last_poll = 0.0
        self._last_prune = None  # monotonic time of this worker's last pruning; None: prune at once
        self._roster_failures: dict[int, float] = {}
        self._last_soon = None  # monotonic time of this worker's last look for classes starting soon
        self._last_retention = None  # monotonic time of this worker's last recording retention pass
        self._delivery_pool = None  # threads sending a claimed batch of scores, made on first use

    def run_once(self) -> int:
        """One pass; returns how much work it did (0 = idle)."""
        with self.app.app_context():
            try:
                return (self._deliver() + self._apply_stuck_events() + self._provider_tasks()
                        + self._refresh_rosters() + self._poll() + self._prune() + self._mail()
                        + self._recordings())
            finally:
                db.session.remove()

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        log.info("worker started")
        threading.Thread(target=self.apply_inbox_forever, args=(stop,), name="lti-inbox", daemon=True).start()
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # a bad pass must not kill the worker: log it and go on
                log.exception("worker pass failed")
                busy = 0
            if not busy:
                stop.wait(IDLE_SLEEP_SECONDS)
        log.info("worker stopped")

    def _deliver(self) -> int:
        from .grades.delivery import deliver_due

        threads = int(self.app.config["DELIVERY_THREADS"])
        if threads > 1 and self._delivery_pool is None:
            self._delivery_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lti-delivery")
        return deliver_due(pool=self._delivery_pool)

    def _apply_stuck_events(self) -> int:
        """Events stored but not applied (a request under load, or one that died)."""
        from .attendance.service import apply_pending

        return apply_pending()

    def apply_inbox_forever(self, stop: threading.Event) -> None:
        """The inbox's own loop (a thread of `run_forever`): a request that finds events waiting
        only stores its own, so they are applied here, a batch per transaction, within
        INBOX_IDLE_SECONDS — not after a whole pass of the other tasks."""
        from .attendance.service import APPLY_BATCH

        while not stop.is_set():
            try:
                with self.app.app_context():
                    try:
                        busy = self._apply_stuck_events()
                    finally:
                        db.session.remove()
            except Exception:  # as in run_forever: log it and go on
                log.exception("applying the inbox failed")
                busy = 0
            if busy < APPLY_BATCH:  # a full batch: a backlog, go on; else let the next one gather
                stop.wait(INBOX_IDLE_SECONDS)

    def _provider_tasks(self) -> int:
        """What the provider packages do at every pass (BBB: settle end callbacks it could not
        confirm at once)."""
        return sum(task() for task in self.app.extensions["provider_tasks"])

    def _prune(self) -> int:
        """Delete events of meetings the tool does not know once UNKNOWN_EVENT_RETENTION_HOURS
        have passed; at most once an hour per worker."""
        if self._last_prune is not None and time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return 0
        self._last_prune = time.monotonic()
        from .attendance.service import prune_unknown_events

        hours = float(self.app.config["UNKNOWN_EVENT_RETENTION_HOURS"])
        deleted, cutoff = prune_unknown_events(timedelta(hours=hours))
        if deleted:
            log.info("pruned %d event(s) of unknown meetings received before %s", deleted, cutoff.isoformat())
        return 0  # periodic housekeeping, like polling: no reason to skip the idle sleep

    def _recordings(self) -> int:
        """Recordings older than their platform's RECORDING_RETENTION_DAYS deleted
        (docs/recordings.md); at most every RETENTION_EVERY_SECONDS per worker."""
        if self._last_retention is not None and time.monotonic() - self._last_retention < RETENTION_EVERY_SECONDS:
            return 0
        self._last_retention = time.monotonic()
        from .recordings.service import apply_retention

        apply_retention()
        return 0  # housekeeping, like pruning

    def _mail(self) -> int:
        """Reminders (docs/reminders.md): "starts soon" notices at most every SOON_EVERY_SECONDS,
        the rosters their recipients need, notices into messages, due messages sent."""
        if not self.app.config.get("SMTP_URL"):
            return 0
        from .reminders import delivery, recipients, service

        if self._last_soon is None or time.monotonic() - self._last_soon >= SOON_EVERY_SECONDS:
            self._last_soon = time.monotonic()
            service.write_soon_notices()
        self._refresh_rosters(recipients.courses_awaiting_roster())
        return service.expand_notices() + delivery.send_due()

    def _refresh_rosters(self, courses=None) -> int:
        from .attendance.roster import courses_needing_roster, refresh_roster
        from .lti.platform_services import PlatformServiceError

        done = 0
        for course in courses_needing_roster() if courses is None else courses:
            if time.monotonic() - self._roster_failures.get(course.id, -1e9) < ROSTER_RETRY_SECONDS:
                continue
            try:
                refresh_roster(course)
                done += 1
            except PlatformServiceError as exc:
                db.session.rollback()
                self._roster_failures[course.id] = time.monotonic()
                log.warning("course %s: roster fetch failed, retrying later: %s", course.id, quoted(str(exc)))
        return done

    def _poll(self) -> int:
        if time.monotonic() - self._last_poll < self.poll_every:
            return 0
        self._last_poll = time.monotonic()
        from .attendance.polling import poll_running_rooms

        poll_running_rooms()
        return 0  # polling is periodic background work, not a reason to skip the idle sleep


def start_worker_thread(app: Flask) -> threading.Event:
    """The embedded default: one worker thread inside the web process."""
    stop = threading.Event()
    thread = threading.Thread(target=Worker(app).run_forever, args=(stop,), name="lti-worker", daemon=True)
    thread.start()
    return stop
