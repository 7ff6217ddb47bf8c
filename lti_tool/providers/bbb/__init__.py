"""BigBlueButton: meetings through BBB's API, attendance from its callbacks.

provider.py talks to the server (create, join, getMeetingInfo, end, hooks) behind the
`VideoProvider` interface; callbacks.py authenticates and reads what BBB sends; routes.py serves
/webhooks/bbb/…; end_callback.py believes the unsigned end callback only when the server
confirms it, and its worker task settles the ends it could not confirm at once. BBB's facts:
docs/reference/bigbluebutton.md.
"""
from __future__ import annotations

from ...settings import FLAG, Setting
from ..base import ProviderPackage


def _build(config):
    from .provider import BigBlueButtonProvider

    return BigBlueButtonProvider.from_config(config)


def _validate(config) -> list[str]:
    from .provider import CHECKSUM_ALGORITHMS

    if config["BBB_CHECKSUM_ALGORITHM"] not in CHECKSUM_ALGORITHMS:
        return ["BBB_CHECKSUM_ALGORITHM must be sha1, sha256, sha384 or sha512, "
                f"not {config['BBB_CHECKSUM_ALGORITHM']!r}"]
    return []


def _blueprints() -> list:
    from .routes import bp

    return [bp]


def _worker_tasks() -> list:
    from .end_callback import confirm_reported_ends

    return [confirm_reported_ends]


PACKAGE = ProviderPackage(
    name="bbb",
    label="BigBlueButton",
    build=_build,
    settings=(
        Setting("BBB_SERVER_URL", "", help="BigBlueButton base, with or without /bigbluebutton/api."),
        Setting("BBB_SHARED_SECRET", "", help="BigBlueButton shared secret (bbb-conf --secret)."),
        Setting("BBB_CHECKSUM_ALGORITHM", "sha256", lower=True, help="sha1, sha256, sha384 or sha512."),
        Setting("BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM", "false", FLAG,
                "Accept bbb-webhooks 3.0–3.3 deliveries, whose checksum does not cover the body: anyone "
                "who saw one delivery URL can forge attendance with it (docs/security.md)."),
    ),
    validate=_validate,
    blueprints=_blueprints,
    worker_tasks=_worker_tasks,
)
