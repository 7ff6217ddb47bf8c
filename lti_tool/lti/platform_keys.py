"""The platforms' public keys, fetched from their JWKS URLs and cached in each process.

A key id the cache does not know triggers one refetch (the platform may have rotated its
keys), but at most once every `MIN_REFETCH_SECONDS` per URL, so a stream of forged tokens
with random `kid`s cannot make the tool hammer the platform.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import jwt
import requests

from ..logsafe import quoted

log = logging.getLogger(__name__)

MIN_REFETCH_SECONDS = 10.0


class PlatformKeyError(Exception):
    """The platform's key for this token could not be found or fetched."""


@dataclass
class _CachedKeySet:
    keys: dict[str, jwt.PyJWK]
    fetched_at: float


class PlatformKeyCache:
    def __init__(self, ttl_seconds: float = 3600.0, timeout: float = 5.0, session=None):
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self.session = session or requests.Session()
        self._cache: dict[str, _CachedKeySet] = {}
        self._lock = threading.Lock()

    def key_for(self, jwks_url: str, kid: str) -> jwt.PyJWK:
        with self._lock:
            cached = self._cache.get(jwks_url)
            now = time.monotonic()
            if cached is None or now - cached.fetched_at > self.ttl_seconds:
                cached = self._fetch(jwks_url)
            if kid not in cached.keys and now - cached.fetched_at >= MIN_REFETCH_SECONDS:
                log.info("unknown kid %s: fetching %s again", quoted(kid), jwks_url)
                cached = self._fetch(jwks_url)
            if kid not in cached.keys:
                raise PlatformKeyError(f"the platform's key set has no key with kid {quoted(kid)}")
            return cached.keys[kid]

    def _fetch(self, jwks_url: str) -> _CachedKeySet:
        try:
            response = self.session.get(jwks_url, timeout=self.timeout)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise PlatformKeyError(f"could not fetch the platform's keys from {jwks_url}: {quoted(str(exc))}") from exc
        keys = {}
        for entry in data.get("keys", []) if isinstance(data, dict) else []:
            # Only RSA signing keys: a token can never be verified with anything else.
            if entry.get("kty") != "RSA" or not entry.get("kid") or entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWTError as exc:
                log.warning("ignoring unusable key %s from %s: %s", quoted(entry.get("kid")), jwks_url, quoted(str(exc)))
        cached = _CachedKeySet(keys=keys, fetched_at=time.monotonic())
        self._cache[jwks_url] = cached
        return cached
