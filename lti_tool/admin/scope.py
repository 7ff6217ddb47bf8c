"""Who is asking on the administration pages, as the services see it (access.py decides it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdminAccess:
    """Who is asking: the operator (issuer None: every platform) or one platform's administrator."""

    issuer: str | None
    who: str  # for the page's header and the log: "operator" or the administrator's name
    enrolment_id: int = 0

    @property
    def is_operator(self) -> bool:
        return self.issuer is None
