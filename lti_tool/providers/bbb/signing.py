"""The URLs BigBlueButton calls back, as the provider registers them.

BBB's end-of-meeting callback carries no signature of its own, so the URL the provider
registers is signed: an HMAC of the meeting id keyed by the tool's SECRET_KEY. The analytics
and recording-ready callbacks carry BBB's own JWTs; bbb-webhooks signs with the shared secret.
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

HOOK_PATH = "/webhooks/bbb"


def callback_signature(secret_key: str, purpose: str, meeting_id: str) -> str:
    return hmac.new(secret_key.encode(), f"{purpose}:{meeting_id}".encode(), hashlib.sha256).hexdigest()


def signature_matches(secret_key: str, purpose: str, meeting_id: str, signature: str | None) -> bool:
    # Bytes on both sides: compare_digest raises TypeError for a str with non-ASCII characters.
    given = (signature or "").encode("utf-8", "replace")
    expected = callback_signature(secret_key, purpose, meeting_id).encode()
    return bool(given) and hmac.compare_digest(expected, given)


def callback_urls(base_url: str, secret_key: str, meeting_id: str) -> dict[str, str]:
    """The meeting's callbacks: "end" (signed), "analytics", "recording_ready"; and "hook", where
    bbb-webhooks sends every event of the server."""
    end_query = urlencode({"meetingID": meeting_id, "sig": callback_signature(secret_key, "end", meeting_id)})
    return {
        "end": f"{base_url}{HOOK_PATH}/end?{end_query}",
        "analytics": f"{base_url}{HOOK_PATH}/analytics",
        "recording_ready": f"{base_url}{HOOK_PATH}/recording-ready",
        "hook": f"{base_url}{HOOK_PATH}",
    }
