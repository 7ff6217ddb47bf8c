"""LiveKit: rooms on a LiveKit server (self-hosted or LiveKit Cloud), a classroom page of the
tool's own, attendance from LiveKit's signed webhooks.

provider.py talks to the server (RoomService and Egress over Twirp, access tokens) behind the
`VideoProvider` interface; callbacks.py authenticates and reads webhooks; routes.py serves
/webhooks/livekit; classroom.py serves the classroom page (/rooms/<id>/live) and the teacher
actions it calls (mute, remove, recording). LiveKit's facts: docs/reference/livekit.md.
"""
from __future__ import annotations

from ...settings import Setting
from ..base import ProviderPackage


def _build(config):
    from .provider import LiveKitProvider

    return LiveKitProvider.from_config(config)


def _validate(config) -> list[str]:
    if not config.get("LIVEKIT_URL"):
        return []
    from .provider import http_url

    try:
        http_url(config["LIVEKIT_URL"])
    except ValueError as exc:
        return [str(exc)]
    return []


def _blueprints() -> list:
    from . import classroom  # noqa: F401  (registers the classroom's views on the blueprint)
    from .routes import bp

    return [bp]


PACKAGE = ProviderPackage(
    name="livekit",
    label="LiveKit",
    build=_build,
    settings=(
        Setting("LIVEKIT_URL", "", help="LiveKit server, wss://… (its HTTP API at the same host over https)."),
        Setting("LIVEKIT_API_KEY", "", help="LiveKit API key (livekit.yaml keys:)."),
        Setting("LIVEKIT_API_SECRET", "", help="LiveKit API secret."),
        Setting("LIVEKIT_RECORDING_FILEPATH", "",
                help="Where LiveKit Egress writes a class recording, with Egress placeholders "
                     "(recordings/{room_name}-{time}.mp4); empty = no recording controls."),
        Setting("LIVEKIT_RECORDING_BASE_URL", "",
                help="Where Egress's storage is served on the web: a recording's playback link is this "
                     "+ its file name; empty = its location when that is a web address, else no link."),
    ),
    validate=_validate,
    blueprints=_blueprints,
)
