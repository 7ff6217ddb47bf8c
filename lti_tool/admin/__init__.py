"""The administration pages (/admin): registrations and their deployments, video server health,
delivery failures and the event backlog, for a platform's administrators and the operator.

access.py decides who is asking and what they may see (a platform's administrators see their
platform; the operator sees everything); service.py gathers what the pages show; routes.py holds
the views. How to get in and what each section means: docs/administration.md.
"""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from .routes import bp

    app.register_blueprint(bp)
