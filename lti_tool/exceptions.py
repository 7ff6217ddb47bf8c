"""What can go wrong for a person using the tool, named for what happened.

Views and services raise these; lti_tool/errors.py turns every one into a readable page (or
JSON for machines) with its status, and logs its `reason`. `message` is for the person (plain
words, no internals); `reason` is for the log (precise; untrusted values already quoted).
"""
from __future__ import annotations


class ToolError(Exception):
    status = 400

    def __init__(self, reason: str, message: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.message = reason, message
        if status is not None:
            self.status = status


class AccessDenied(ToolError):
    """No ticket, an expired or forged one, a ticket for another room, a teacher action asked by
    a student, a form from another site (401 or 403)."""

    status = 403


class InvalidInput(ToolError):
    """A form or parameter the tool cannot use as it is (400; 404 for a page that does not exist)."""

    status = 400


class NotAvailable(ToolError):
    """Something this room, its video service or this installation does not offer (409)."""

    status = 409
