"""A third video provider, made for the tests: "Toy video", a tiny service served by
tests/fakes/toy_server.py. It is registered exactly as BigBlueButton and LiveKit are — named in
PROVIDER_PACKAGES — and proves that a provider plugs in without a line of the core changing:
its settings, its provider, its webhook route and its event parsing all live here.
"""
from __future__ import annotations

from lti_tool.providers.base import ProviderPackage
from lti_tool.settings import Setting


def _build(config):
    from .provider import ToyProvider

    return ToyProvider(config["TOY_SERVER_URL"], config["TOY_SECRET"], float(config["PROVIDER_TIMEOUT_SECONDS"]))


def _validate(config) -> list[str]:
    url = config["TOY_SERVER_URL"]
    if not url or url.startswith(("http://", "https://")):
        return []
    return [f"TOY_SERVER_URL must be an http(s) URL, not {url!r}"]


def _blueprints() -> list:
    from .routes import bp

    return [bp]


PACKAGE = ProviderPackage(
    name="toy",
    label="Toy video",
    build=_build,
    settings=(
        Setting("TOY_SERVER_URL", "", help="Where the toy video service runs."),
        Setting("TOY_SECRET", "", help="The secret the toy service signs its webhooks and joins with."),
    ),
    validate=_validate,
    blueprints=_blueprints,
)
