"""The tool's RSA key pairs: generated when missing, rotated on demand, published as a JWKS.

Private keys are PEM files `tool-<UTC timestamp>.pem` in `KEYS_DIR`; the newest signs (client
assertions, deep-linking responses), all of them are published so that tokens signed before a
rotation still verify. A key pair named by a `TOOL_CONFIG` registration is published too.
The `kid` is the key's RFC 7638 thumbprint, so it is the same on every worker and machine.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto import jwk

log = logging.getLogger(__name__)

KEY_PREFIX = "tool-"
KEY_SIZE = 2048


@dataclass(frozen=True)
class ToolKey:
    kid: str
    private_pem: bytes | None  # None for a published-only public key
    public_jwk: dict
    path: Path


def _public_jwk(key: jwk.JWK) -> dict:
    public = key.export_public(as_dict=True)
    public.update({"kid": key.thumbprint(), "alg": "RS256", "use": "sig"})
    return public


class KeyFileError(ValueError):
    """A key file cannot be used; the message names the file and what is wrong."""


def _load_pem(path: Path) -> ToolKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the RSA key file {path}: {exc}") from exc
    try:
        key = jwk.JWK.from_pem(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM RSA key: {exc}") from exc
    key_type = key.get("kty")
    if key_type != "RSA":
        raise KeyFileError(f"{path} is a {key_type} key; the tool signs with RSA (RS256) keys only")
    private = data if key.has_private else None
    return ToolKey(kid=key.thumbprint(), private_pem=private, public_jwk=_public_jwk(key), path=path)


def generate_key_file(keys_dir: Path) -> Path:
    """Write a new private key; the timestamped name makes it the newest."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = keys_dir / f"{KEY_PREFIX}{stamp}.pem"
    # O_EXCL + 0600: never overwrite a key, never leave one world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


class KeyRing:
    """All keys the tool publishes, and the one it signs with."""

    def __init__(self, keys_dir: str | Path, extra_key_files: list[str] | None = None):
        self.keys_dir = Path(keys_dir)
        self.extra_key_files = [Path(p) for p in (extra_key_files or [])]
        self._keys: list[ToolKey] = []
        self._extra: dict[Path, ToolKey] = {}

    def ensure_keys(self) -> None:
        """Generate a first key pair when the directory has none (first start)."""
        if not self._own_key_files():
            lock = self.keys_dir / ".generate.lock"
            self.keys_dir.mkdir(parents=True, exist_ok=True)
            try:
                # Several workers may start at once: only the one holding the lock generates.
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
                try:
                    if not self._own_key_files():
                        path = generate_key_file(self.keys_dir)
                        log.info("generated the tool's first RSA key pair: %s", path)
                finally:
                    lock.unlink(missing_ok=True)
            except FileExistsError:
                self._wait_for_key()
        self.reload()

    def _wait_for_key(self) -> None:
        import time

        for _ in range(100):
            if self._own_key_files():
                return
            time.sleep(0.05)

    def _own_key_files(self) -> list[Path]:
        if not self.keys_dir.is_dir():
            return []
        return sorted(self.keys_dir.glob(f"{KEY_PREFIX}*.pem"))

    def _refresh_if_rotated(self) -> None:
        """Another process (`keys rotate`, another machine sharing KEYS_DIR) may have added or
        removed a key: a directory listing is cheap, so every worker follows at once."""
        if [k.path for k in self._keys] != self._own_key_files():
            self.reload()

    def reload(self) -> None:
        self._keys = [_load_pem(path) for path in self._own_key_files()]
        self._extra = {}
        for path in self.extra_key_files:
            if path.exists():
                self._extra[path] = _load_pem(path)
            else:
                log.warning("key file named in TOOL_CONFIG does not exist: %s", path)

    def rotate(self) -> ToolKey:
        """Add a new signing key; older keys stay published."""
        generate_key_file(self.keys_dir)
        self.reload()
        return self.signing_key

    @property
    def signing_key(self) -> ToolKey:
        self._refresh_if_rotated()
        signing = [k for k in self._keys if k.private_pem]
        if not signing:
            raise LookupError(f"no private key in {self.keys_dir}; run `flask --app wsgi keys rotate`")
        return signing[-1]

    def key_for_file(self, path: str | Path) -> ToolKey | None:
        return self._extra.get(Path(path))

    def all_keys(self) -> list[ToolKey]:
        self._refresh_if_rotated()
        return [*self._keys, *self._extra.values()]

    def jwks(self) -> dict:
        seen, keys = set(), []
        for key in self.all_keys():
            if key.kid not in seen:
                seen.add(key.kid)
                keys.append(key.public_jwk)
        return {"keys": keys}
