"""The toy video service behind the `VideoProvider` interface: JSON over HTTP."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlencode

import requests

from lti_tool.providers.base import (
    NOT_FOUND,
    Attendee,
    JoinRole,
    MeetingSpec,
    MeetingStatus,
    Participant,
    ProviderHealth,
    ProviderMisconfigured,
    ProviderUnavailable,
    VideoProvider,
)


def sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


class ToyProvider(VideoProvider):
    name = "toy"

    def __init__(self, server_url: str, secret: str, timeout: float = 5):
        self.server_url, self.secret, self.timeout = server_url.rstrip("/"), secret, timeout

    def is_configured(self) -> bool:
        return bool(self.server_url and self.secret)

    def supported_settings(self) -> frozenset[str]:
        # The toy service knows roles only; the tool itself makes students wait.
        return frozenset({"wait_for_moderator", "everyone_moderator"})

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        if not self.is_configured():
            raise ProviderMisconfigured("toy video is not configured: set TOY_SERVER_URL and TOY_SECRET")
        try:
            return requests.request(method, self.server_url + path, timeout=self.timeout,
                                    headers={"X-Toy-Key": self.secret}, **kwargs)
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"toy video: {type(exc).__name__}") from exc

    @staticmethod
    def _status(answer: dict) -> MeetingStatus:
        people = tuple(Participant(p["user"], p["name"], p["role"]) for p in answer["participants"])
        return MeetingStatus(exists=True, running=bool(people), run_id=answer["run"],
                             started_at_ms=answer["started_ms"], participant_count=len(people),
                             moderator_count=sum(1 for p in people if p.role == "MODERATOR"), participants=people)

    def start_meeting(self, spec: MeetingSpec) -> MeetingStatus:
        return self._status(self._call("PUT", f"/rooms/{spec.meeting_id}", json={"name": spec.name}).json())

    def join(self, spec: MeetingSpec, attendee: Attendee, run_id: str | None, tool_page: Callable[[str], str]) -> str:
        moderator = attendee.role == JoinRole.MODERATOR or spec.settings.everyone_moderator
        query = {"room": spec.meeting_id, "user": attendee.user_id, "name": attendee.full_name,
                 "role": "MODERATOR" if moderator else "VIEWER", "leave": spec.logout_url}
        text = urlencode(query)
        return f"{self.server_url}/join?{text}&sig={sign(self.secret, text)}"

    def meeting_status(self, meeting_id: str) -> MeetingStatus:
        answer = self._call("GET", f"/rooms/{meeting_id}")
        return NOT_FOUND if answer.status_code == 404 else self._status(answer.json())

    def end_meeting(self, meeting_id: str) -> None:
        self._call("DELETE", f"/rooms/{meeting_id}")

    def check(self) -> ProviderHealth:
        if not self.is_configured():
            return ProviderHealth("", False, False, "not configured: set TOY_SERVER_URL and TOY_SECRET")
        try:
            answer = self._call("GET", "/rooms/health-check")
        except ProviderUnavailable as exc:
            return ProviderHealth(self.server_url, False, False, exc.detail)
        accepted = answer.status_code in (200, 404)
        return ProviderHealth(self.server_url, True, accepted, "answers" if accepted else f"HTTP {answer.status_code}")
