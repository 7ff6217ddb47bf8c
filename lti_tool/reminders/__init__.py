"""Reminders by e-mail (docs/reminders.md): the timetable's notices (scheduled, moved, cancelled,
starting soon, live) become one message per person of the room's roster, sent by the worker
through `SMTP_URL` and retried like grades; each person may stop them per room.

smtp.py reads SMTP_URL; recipients.py says who is told; messages.py writes the messages and the
stop links; service.py turns notices into messages and records opt-outs; delivery.py sends the
outbox; routes.py serves the stop page and the room page's on/off form.
"""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from .routes import bp  # registers the views on the blueprint

    app.register_blueprint(bp)
