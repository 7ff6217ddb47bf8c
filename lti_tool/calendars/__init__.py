"""Calendars: each person's secret iCalendar addresses, one per room and one for all their rooms
(issue 10). feeds.py holds the addresses and what each feed holds, ics.py writes the iCalendar
text, routes.py the views and the room page's `calendar_links`. docs/calendars.md says why.
"""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from .routes import bp

    app.register_blueprint(bp)
