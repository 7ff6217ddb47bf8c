"""Recordings (docs/recordings.md): each room's recordings listed on its pages from the tool's
own copy, published, unpublished, renamed and deleted by teachers, and deleted by the worker
once older than the platform's retention.

service.py holds the rules and the copy; routes.py serves the list and the teachers' forms.
"""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from .routes import bp  # registers the views on the blueprint

    app.register_blueprint(bp)
