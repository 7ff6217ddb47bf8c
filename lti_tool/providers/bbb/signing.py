"""Unguessable callback URLs: BigBlueButton's end-of-meeting callback carries no signature of
its own, so the tool signs the URL it registers (HMAC of the meeting id with SECRET_KEY)."""
from __future__ import annotations

import hashlib
import hmac

from flask import current_app


def callback_signature(purpose: str, meeting_id: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{purpose}:{meeting_id}".encode(), hashlib.sha256).hexdigest()


def signature_matches(purpose: str, meeting_id: str, signature: str | None) -> bool:
    # Bytes on both sides: compare_digest raises TypeError for a str with non-ASCII characters.
    given = (signature or "").encode("utf-8", "replace")
    return bool(given) and hmac.compare_digest(callback_signature(purpose, meeting_id).encode(), given)
