"""Fetching the platforms' key sets (lti/platform_keys.py) against a real local HTTP server that
misbehaves the way a platform (or someone posing as one) can.

Observed before: failures were not remembered (20 look-ups made 20 fetches while the JWKS
answered 503); a slow-drip answer held a fetch 18 s despite the 5 s timeout, and another
platform's launch waited behind it (one lock per process); an 84 MB JWKS took 1.7 GB; redirects
to other hosts were followed.
"""
from __future__ import annotations

import json
import threading
import time
import tracemalloc

import pytest
import requests

from lti_tool import create_app
from lti_tool.lti.platform_keys import (
    BACKOFF_MAX_SECONDS,
    MAX_JWKS_BYTES,
    PlatformKeyCache,
    PlatformKeysUnavailable,
)
from tests.conftest import TOOL_BASE_URL, empty_tables, row_counts, tool_overrides
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.jwks_server import JwksServer
from tests.fakes.lti_platform import FakePlatform
from tests.support import RECORDS


class Clock:
    """The cache's clock for backoff, moved by the test (fetch deadlines use real time)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def jwks(platform_key):
    with JwksServer(lambda: {"keys": [platform_key.jwk()]}) as server:
        yield server


@pytest.fixture
def platform(platform_key, jwks):
    """The fake Moodle, registered with the misbehaving server as its key set URL."""
    with FakePlatform(tool_base_url=TOOL_BASE_URL, signing_key=platform_key) as fake:
        fake.key_set_url = jwks.url
        yield fake


def cache(deadline: float = 1.0, clock=None) -> PlatformKeyCache:
    return PlatformKeyCache(ttl_seconds=3600, deadline_seconds=deadline, **({"clock": clock} if clock else {}))


def unavailable(call) -> tuple[PlatformKeysUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(PlatformKeysUnavailable) as caught:
        call()
    return caught.value, time.monotonic() - started


# --- failures are remembered, with a growing backoff ----------------------------------------------
def test_twenty_launches_while_the_jwks_answers_503_make_one_fetch(app, lms, jwks):
    jwks.mode = "503"
    for _ in range(20):
        client = app.test_client()
        form = lms.start_login(client, as_="student")
        before = row_counts(app)
        response = client.post("/lti/launch", data=form)
        body = response.get_data(as_text=True)
        assert response.status_code == 503, body[:300]
        assert "<h1" in body and "try again" in body
        assert 0 < int(response.headers["Retry-After"]) <= 5
        assert row_counts(app) == before, "a refused launch wrote something or spent its state"
    assert jwks.requests == 1


def test_backoff_doubles_from_5_seconds_to_5_minutes_and_a_success_resets_it(jwks, platform_key):
    clock = Clock()
    keys = cache(clock=clock)
    kid = platform_key.kid
    jwks.mode = "503"
    for delay in (5, 10, 20, 40, 80, 160, 300, 300):
        fetched = jwks.requests
        error, _ = unavailable(lambda: keys.key_for(jwks.url, kid))
        assert jwks.requests == fetched + 1
        assert error.retry_after == delay
        clock.advance(delay - 0.5)
        unavailable(lambda: keys.key_for(jwks.url, kid))
        assert jwks.requests == fetched + 1, f"fetched again within the {delay} s backoff"
        clock.advance(0.5)
    assert BACKOFF_MAX_SECONDS == 300
    jwks.mode = "ok"
    assert keys.key_for(jwks.url, kid).key_id == kid
    clock.advance(3601)  # the cache expires; the next failure starts over at 5 s
    jwks.mode = "503"
    error, _ = unavailable(lambda: keys.key_for(jwks.url, kid))
    assert error.retry_after == 5


# --- a fetch has a total deadline and a size cap --------------------------------------------------
def test_a_slow_drip_answer_is_cut_at_the_deadline(jwks, platform_key):
    jwks.mode = "drip"  # headers at once, then one byte a second: every read is "on time"
    error, seconds = unavailable(lambda: cache(deadline=1.0).key_for(jwks.url, platform_key.kid))
    # Uncut, the drip lasts 18 s; generous slack keeps a busy machine from failing this.
    assert seconds < 5, f"the fetch took {seconds:.1f} s with a 1 s deadline"
    assert "1 s" in str(error)


def test_an_answer_that_never_comes_is_cut_at_the_deadline(jwks, platform_key):
    jwks.mode = "stall"
    _, seconds = unavailable(lambda: cache(deadline=1.0).key_for(jwks.url, platform_key.kid))
    assert seconds < 5, f"the fetch took {seconds:.1f} s with a 1 s deadline (uncut: for ever)"


@pytest.mark.parametrize("mode", ["huge", "huge-announced"])
def test_a_huge_key_set_is_refused_at_the_size_cap(jwks, platform_key, mode):
    jwks.mode = mode
    tracemalloc.start()
    try:
        error, seconds = unavailable(lambda: cache(deadline=5.0).key_for(jwks.url, platform_key.kid))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than" in str(error)
    assert peak < 4 * MAX_JWKS_BYTES, f"fetching took {peak / 1e6:.1f} MB"
    assert jwks.bytes_sent < 32 * 1024 * 1024, "the tool kept reading"


# --- redirects stay on the key set URL's origin ---------------------------------------------------
def test_a_redirect_to_another_host_is_not_followed(jwks, platform_key):
    with JwksServer(lambda: {"keys": [platform_key.jwk()]}, host="127.0.0.2") as elsewhere:
        jwks.mode, jwks.redirect_to = "redirect", elsewhere.url
        error, _ = unavailable(lambda: cache().key_for(jwks.url, platform_key.kid))
        assert elsewhere.requests == 0
    assert "redirect" in str(error)


def test_a_redirect_on_the_same_origin_is_followed(jwks, platform_key):
    assert cache().key_for(jwks.base_url + "/moved", platform_key.kid).key_id == platform_key.kid
    assert jwks.requests == 2


# --- one platform's slow key set does not hold up another's launch ---------------------------------
@pytest.fixture
def two_platforms(migrated, database_url, keys_dir, tmp_path, platform_key):
    """The tool over real HTTP with two platforms: `slow`, whose key set URL drips, and `fast`."""
    forward = LaterApp()
    tool = ServedApp(forward)
    with JwksServer(lambda: {"keys": [platform_key.jwk()]}) as slow_jwks, \
            FakePlatform(tool_base_url=tool.url, signing_key=platform_key) as slow, \
            FakePlatform(tool_base_url=tool.url, signing_key=platform_key) as fast:
        slow.key_set_url = slow_jwks.url
        slow_jwks.mode = "drip"
        config_file = tmp_path / "tool_config.json"
        config_file.write_text(json.dumps({p.issuer: [p.registration_args()] for p in (slow, fast)}))
        app = create_app(tool_overrides(database_url, keys_dir, config_file,
                                    TOOL_BASE_URL=tool.url, JWKS_FETCH_SECONDS="3"))
        forward.app = app
        tool.start()
        try:
            yield app, slow, slow_jwks, fast
        finally:
            tool.stop()
            empty_tables(app)


def test_a_slow_platform_does_not_hold_up_another_platforms_launch(two_platforms):
    app, slow, slow_jwks, fast = two_platforms
    answers = {}
    slow_launch = threading.Thread(
        target=lambda: answers.setdefault("slow", slow.launch(requests.Session(), user="student"))
    )
    slow_launch.start()
    assert slow_jwks.request_arrived.wait(5), "the slow platform's launch never fetched its keys"
    started = time.monotonic()
    fast_answer = fast.launch(requests.Session(), user="student")
    fast_seconds = time.monotonic() - started
    still_fetching = slow_launch.is_alive()
    slow_launch.join(10)
    assert fast_answer.status_code == 303, fast_answer.text[:300]
    # Done while the slow platform's fetch still runs: it did not wait behind it.
    assert still_fetching, f"the other platform's launch took {fast_seconds:.1f} s, until the slow fetch ended"
    assert answers["slow"].status_code == 503
    counts = row_counts(app)
    assert {t: counts[t] for t in RECORDS} == dict.fromkeys(RECORDS, 1), "only the fast launch is recorded"
