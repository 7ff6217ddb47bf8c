"""Why a login, a launch or a dynamic registration was refused: a reason for the log and a
sentence for the person."""
from __future__ import annotations

from ..exceptions import ToolError


class LaunchError(Exception):
    """A login or launch the tool refuses. Nothing has been written when this is raised."""

    def __init__(self, reason: str, user_message: str, status: int = 400, *, relaunch: dict | None = None,
                 retry_after: float | None = None, cookie_missing: bool = False):
        super().__init__(reason)
        self.reason = reason  # for the log: precise, may name claims and values
        self.user_message = user_message  # for the page: plain words, no internals
        self.status = status
        # Login parameters to restart the launch in a new window (third-party cookies blocked).
        self.relaunch = relaunch
        # Seconds after which trying again may work (a 503's Retry-After).
        self.retry_after = retry_after
        # The browser sent no state cookie: the page explains what to do, framed or not.
        self.cookie_missing = cookie_missing


class PlatformStorageNeeded(LaunchError):
    """No state cookie came back, but the platform offers LTI platform storage: the browser
    must read the state's binding from there and post the launch again."""

    def __init__(self, reason: str, *, storage_target: str, platform_origin: str, state: str):
        super().__init__(reason, "Checking your launch with the learning platform…", 200)
        self.storage_target = storage_target
        self.platform_origin = platform_origin
        self.state = state


class ResubmitNeeded(LaunchError):
    """No state cookie came with a launch in a top-level window (or one the browser did not say
    was framed): a page of the tool posts the same launch to the tool again, same-site, so the
    browser sends its SameSite=Lax cookie this time. Nothing has been written."""

    def __init__(self, reason: str, *, state: str):
        super().__init__(reason, "Opening the class…", 200)
        self.state = state


class RegistrationError(ToolError):
    """A dynamic registration the tool could not complete. Nothing has been stored when this is
    raised. `platform_message` is what the platform answered, when it refused: the page shows it
    (escaped) so the administrator sees the platform's own reason."""

    def __init__(self, reason: str, message: str, status: int = 400, *, platform_message: str | None = None):
        super().__init__(reason, message, status)
        self.platform_message = platform_message
