"""The platforms' public keys, fetched from their JWKS URLs and cached in each process.

A key set URL is given by whoever registered the platform, but what answers there is not under
the tool's control, and any anonymous launch can make the tool ask. So every fetch is bounded
(the request itself: lti/fetch.py, shared with dynamic registration):

* one lock per URL: a slow platform holds up its own launches, never another platform's;
* a total deadline (`JWKS_FETCH_SECONDS`): the body is streamed and the fetch stops when the
  deadline passes, however the bytes trickle in;
* a size cap (`MAX_JWKS_BYTES`; a key set is a few kilobytes);
* redirects only on the URL's own origin (at most `MAX_REDIRECTS`), never to another host;
* a failed URL is not fetched again for a while (5 s, doubling to 5 minutes; a success resets
  it), and launches meanwhile are answered at once with `PlatformKeysUnavailable` (503).

A key id the cache does not know triggers one refetch (the platform may have rotated its
keys), but at most once every `MIN_REFETCH_SECONDS` per URL, so a stream of forged tokens
with random `kid`s cannot make the tool hammer the platform.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import jwt
import requests

from ..logsafe import quoted
from .fetch import MAX_REDIRECTS, FetchError, Limits, fetch

log = logging.getLogger(__name__)

MIN_REFETCH_SECONDS = 10.0
MAX_JWKS_BYTES = 1024 * 1024
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0


class PlatformKeyError(Exception):
    """The platform's key for this token could not be found or fetched."""


class PlatformKeysUnavailable(PlatformKeyError):
    """The key set could not be fetched (now, or recently and the backoff has not run out)."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _KeySetState:
    """What the cache knows about one JWKS URL; `lock` serialises its fetches."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, jwt.PyJWK] | None = None
    fetched_at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""


class PlatformKeyCache:
    def __init__(self, ttl_seconds: float = 3600.0, deadline_seconds: float = 5.0, session=None,
                 clock=time.monotonic):
        self.ttl_seconds = ttl_seconds
        self.deadline_seconds = deadline_seconds
        self.session = session or requests.Session()
        self.clock = clock  # cache ages and backoff; fetch deadlines always use real time
        self._states: dict[str, _KeySetState] = {}
        self._states_lock = threading.Lock()  # guards the dict only, never held during a fetch

    def key_for(self, jwks_url: str, kid: str) -> jwt.PyJWK:
        state = self._state(jwks_url)
        with state.lock:
            if state.keys is None or self.clock() - state.fetched_at > self.ttl_seconds:
                self._refresh(jwks_url, state)
            if kid not in state.keys and self.clock() - state.fetched_at >= MIN_REFETCH_SECONDS:
                log.info("unknown kid %s: fetching %s again", quoted(kid), jwks_url)
                self._refresh(jwks_url, state)
            if kid not in state.keys:
                raise PlatformKeyError(f"the platform's key set has no key with kid {quoted(kid)}")
            return state.keys[kid]

    def _state(self, jwks_url: str) -> _KeySetState:
        with self._states_lock:
            return self._states.setdefault(jwks_url, _KeySetState())

    # --- refresh with backoff ---------------------------------------------------------------
    def _refresh(self, jwks_url: str, state: _KeySetState) -> None:
        wait = state.retry_at - self.clock()
        if wait > 0:
            raise PlatformKeysUnavailable(
                f"the platform's keys at {jwks_url} failed {state.failures} time(s), last: "
                f"{state.last_error}; not fetched again for {wait:.0f} s",
                retry_after=wait,
            )
        try:
            keys = _parse_key_set(self._download(jwks_url), jwks_url)
        except PlatformKeyError as exc:
            raise self._failed(jwks_url, state, exc) from exc
        state.keys, state.fetched_at = keys, self.clock()
        state.failures, state.retry_at, state.last_error = 0, 0.0, ""

    def _failed(self, jwks_url: str, state: _KeySetState, exc: PlatformKeyError) -> PlatformKeysUnavailable:
        state.failures += 1
        delay = min(BACKOFF_FIRST_SECONDS * 2 ** (state.failures - 1), BACKOFF_MAX_SECONDS)
        state.retry_at, state.last_error = self.clock() + delay, str(exc)
        log.warning("%s; not fetched again for %.0f s", exc, delay)
        return PlatformKeysUnavailable(str(exc), retry_after=delay)

    # --- one bounded fetch (lti/fetch.py) -----------------------------------------------------
    def _download(self, jwks_url: str) -> bytes:
        """The key set's bytes, within the deadline and size cap, redirects on its origin only."""
        limits = Limits(deadline_seconds=self.deadline_seconds, max_bytes=MAX_JWKS_BYTES, redirects=MAX_REDIRECTS)
        try:
            fetched = fetch(self.session, jwks_url, what="the platform's keys", limits=limits,
                            headers={"Accept": "application/json"})
        except FetchError as exc:
            raise PlatformKeyError(str(exc)) from exc
        if fetched.status != 200:
            raise PlatformKeyError(f"the platform's keys at {jwks_url} answered HTTP {fetched.status}")
        return fetched.body


def _parse_key_set(body: bytes, jwks_url: str) -> dict[str, jwt.PyJWK]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PlatformKeyError(f"the platform's keys at {jwks_url} are not JSON: {quoted(str(exc))}") from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    keys = {}
    for entry in entries if isinstance(entries, list) else []:
        # Only RSA signing keys: a token can never be verified with anything else.
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if not isinstance(entry.get("kid"), str) or not entry["kid"]:
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256")
        except jwt.PyJWTError as exc:
            log.warning("ignoring unusable key %s from %s: %s", quoted(entry.get("kid")), jwks_url, quoted(str(exc)))
    return keys
