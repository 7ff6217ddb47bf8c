"""The bbb-webhooks 3.0–3.3 checksum, H(URL + "{}" + secret), does not cover the body: anyone who
saw one delivery URL (a proxy's access log, say) can post any body with it. Observed before:
such a URL and a forged body recorded 60 minutes of attendance and a 99.97 grade. It is refused
unless BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM turns it on; the deliveries that bind the body (3.4+,
2.x) or prove the secret (Bearer) pass either way. Over real HTTP against the live tool.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select

from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval, ProviderEvent
from tests.conftest import row_counts
from tests.support import ClassRun

LEGACY_ON = {"BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM": "true"}


def form_body(events: list[dict]) -> bytes:
    """A bbb-webhooks body: domain, the events as a JSON array, timestamp."""
    event = json.dumps(events, separators=(",", ":"))
    return urlencode({"domain": "bbb.example.com", "event": event, "timestamp": "1715265999999"}).encode()


def observed_legacy_url(run: ClassRun) -> tuple[str, requests.Response]:
    """What an eavesdropper keeps: the URL of one genuine 3.0–3.3 delivery (checksum included)."""
    response = run.bbb.send_webhook(run.hook, [run.created()], variant="v3.0-3.3")
    return response.request.url, response


def forged_hour(run: ClassRun) -> bytes:
    """A body the server never sent: the student present for the whole hour, then the end."""
    return form_body([run.created(), run.joined("student", 0), run.left("student", 60), run.ended(60)])


def test_a_forged_body_under_an_observed_legacy_checksum_is_refused_by_default(live, caplog):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    before = row_counts(live.app)
    url, genuine = observed_legacy_url(run)
    assert "checksum=" in url and genuine.status_code == 401  # the old server's own delivery too

    with caplog.at_level(logging.WARNING, logger="lti_tool.webhooks.routes"):
        forged = requests.post(url, data=forged_hour(run), timeout=10,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status_code == 401
    assert forged.headers["Content-Type"].startswith("application/json") and forged.json()["error"]
    assert row_counts(live.app) == before
    assert any("BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("live_overrides", [LEGACY_ON])
def test_the_setting_accepts_legacy_checksums_and_with_them_the_risk(live):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    url, genuine = observed_legacy_url(run)
    assert genuine.status_code == 200

    forged = requests.post(url, data=forged_hour(run), timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status_code == 200, forged.text
    with live.app.app_context():
        assert db.session.scalar(select(func.count(ProviderEvent.id))) == 4
        [interval] = db.session.scalars(select(AttendanceInterval)).all()
        assert (interval.left_at - interval.joined_at).total_seconds() == 3600  # what the forger wanted


@pytest.mark.parametrize(
    "variant, algorithm", [("v3.4", "sha1"), ("v3.4", "sha512"), ("v2", "sha1"), ("bearer", "sha1")]
)
def test_deliveries_that_bind_the_body_or_prove_the_secret_pass_by_default(live, variant, algorithm):
    teacher = live.launch("teacher")
    run = ClassRun(live, teacher)
    response = run.bbb.send_webhook(run.hook, [run.created()], variant=variant, algorithm=algorithm)
    assert response.status_code == 200 and response.json()["new"] == 1


def test_a_v2_checksum_does_not_carry_over_to_another_body(live):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    genuine = run.bbb.send_webhook(run.hook, [run.created()], variant="v2")
    assert genuine.status_code == 200
    forged = requests.post(genuine.request.url, data=forged_hour(run), timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status_code == 401
    with live.app.app_context():
        assert db.session.scalar(select(func.count(ProviderEvent.id))) == 1
