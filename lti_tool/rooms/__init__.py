"""The room pages: what a teacher and a student see after a launch, and the join control.

blueprint.py holds the blueprint; routes.py, attendance_views.py and timetable_views.py register their
views on it
(imported by `register`); access.py is the one access rule of room views; service.py holds the
rules of a live classroom; tickets.py the tickets that stand in for a session.
"""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import attendance_views, routes, settings_views, timetable_views  # noqa: F401  (register the views on the blueprint)
    from .blueprint import bp

    app.register_blueprint(bp)
