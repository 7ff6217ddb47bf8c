"""Video providers behind one interface (`base.VideoProvider`), looked up by name.

`provider_for(name)` returns the configured provider for the current app; providers are built
once per app from its config and kept in `app.extensions["providers"]`.
"""
from __future__ import annotations

from flask import current_app

from .base import ProviderMisconfigured, VideoProvider

PROVIDER_NAMES = ("bbb", "livekit")


def build_providers(config) -> dict[str, VideoProvider]:
    from .bbb.provider import BigBlueButtonProvider
    from .livekit.provider import LiveKitProvider

    return {"bbb": BigBlueButtonProvider.from_config(config), "livekit": LiveKitProvider.from_config(config)}


def provider_for(name: str) -> VideoProvider:
    providers = current_app.extensions["providers"]
    if name not in providers:
        raise ProviderMisconfigured(
            f"video provider {name!r} is not available in this version",
            user_message=(
                f"This room uses the '{name}' video service, which this installation does not "
                "offer yet. Please tell your site administrator."
            ),
        )
    return providers[name]


def is_ready(name: str) -> bool:
    """True when the provider exists in this version and the operator configured it."""
    provider = current_app.extensions["providers"].get(name)
    return provider is not None and provider.is_configured()
