"""The tool's key ring: first key generated, rotation, the published JWKS and its kids.

Every `kid` is the RFC 7638 thumbprint, so every worker and machine sharing `keys/` publishes
the same kids; rotation keeps the old public keys published; private members never leak.
"""
from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lti_tool.lti.keys import KeyRing

PUBLIC_MEMBERS = {"kty", "kid", "alg", "use", "n", "e"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rfc7638_thumbprint(pem: bytes) -> str:
    """Computed here from the PEM, independently of jwcrypto."""
    numbers = serialization.load_pem_private_key(pem, password=None).public_key().public_numbers()
    canonical = json.dumps(
        {"e": b64url_uint(numbers.e), "kty": "RSA", "n": b64url_uint(numbers.n)},
        separators=(",", ":"), sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def ring_dir(tmp_path_factory):
    """One generated key shared by the read-only tests (RSA generation is slow)."""
    directory = tmp_path_factory.mktemp("ring")
    KeyRing(directory).ensure_keys()
    return directory


def key_files(directory):
    return sorted(directory.glob("tool-*.pem"))


# --- the first key ----------------------------------------------------------------------------
def test_empty_directory_gets_one_private_key_readable_by_owner_only(tmp_path):
    directory = tmp_path / "keys"  # not even created yet
    ring = KeyRing(directory)
    ring.ensure_keys()
    files = key_files(directory)
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in files[0].read_bytes()
    assert ring.signing_key.path == files[0]
    assert not (directory / ".generate.lock").exists()


def test_ensure_keys_is_idempotent(ring_dir):
    before = key_files(ring_dir)
    ring = KeyRing(ring_dir)
    ring.ensure_keys()
    ring.ensure_keys()
    assert key_files(ring_dir) == before
    assert len(ring.jwks()["keys"]) == 1


def test_kid_is_the_rfc7638_thumbprint_and_stable_across_key_rings(ring_dir):
    (path,) = key_files(ring_dir)
    first, second = KeyRing(ring_dir), KeyRing(ring_dir)
    first.ensure_keys()
    second.reload()
    expected = rfc7638_thumbprint(path.read_bytes())
    assert first.signing_key.kid == second.signing_key.kid == expected
    assert [key["kid"] for key in first.jwks()["keys"]] == [expected]


def test_jwks_entries_are_rs256_signature_keys_without_private_members(ring_dir):
    ring = KeyRing(ring_dir)
    ring.ensure_keys()
    (entry,) = ring.jwks()["keys"]
    assert set(entry) == PUBLIC_MEMBERS
    assert not PRIVATE_MEMBERS & set(entry)
    assert entry["kty"] == "RSA" and entry["alg"] == "RS256" and entry["use"] == "sig"
    pem = key_files(ring_dir)[0].read_bytes()
    numbers = serialization.load_pem_private_key(pem, password=None).public_key().public_numbers()
    assert entry["n"] == b64url_uint(numbers.n) and entry["e"] == b64url_uint(numbers.e)


def test_served_jwks_has_no_private_members(client):
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert keys
    for entry in keys:
        assert entry["kid"] and not PRIVATE_MEMBERS & set(entry), entry


# --- rotation ---------------------------------------------------------------------------------
def test_rotation_changes_the_signing_key_and_keeps_the_old_one_published(tmp_path):
    ring = KeyRing(tmp_path)
    ring.ensure_keys()
    old = ring.signing_key
    new = ring.rotate()
    assert new.kid != old.kid
    assert ring.signing_key.kid == new.kid
    assert [key["kid"] for key in ring.jwks()["keys"]] == [old.kid, new.kid]
    # Another process (a worker started later) sees the same: the newest file signs.
    restarted = KeyRing(tmp_path)
    restarted.ensure_keys()
    assert restarted.signing_key.kid == new.kid
    assert {key["kid"] for key in restarted.jwks()["keys"]} == {old.kid, new.kid}


def test_running_worker_publishes_a_key_rotated_by_another_process(tmp_path):
    worker = KeyRing(tmp_path)
    worker.ensure_keys()
    rotated = KeyRing(tmp_path)
    rotated.reload()
    new = rotated.rotate()  # `flask --app wsgi keys rotate`, another process
    assert new.kid in {key["kid"] for key in worker.jwks()["keys"]}


# --- keys named by a TOOL_CONFIG registration ------------------------------------------------
def write_pair(directory, signing_key) -> tuple:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "moodle_private.pem", directory / "moodle_public.pem"
    private.write_bytes(signing_key.private_pem)
    public.write_bytes(signing_key.public_pem)
    return private, public


def test_registration_key_pair_is_published_next_to_the_tools_own(ring_dir, tmp_path, platform_key):
    private, public = write_pair(tmp_path / "reg", platform_key)
    ring = KeyRing(ring_dir, [str(private), str(public)])
    ring.ensure_keys()
    kids = [key["kid"] for key in ring.jwks()["keys"]]
    registration_kid = rfc7638_thumbprint(platform_key.private_pem)
    assert registration_kid in kids
    assert len(kids) == 2, "the pair's private and public files are one key, published once"
    assert ring.key_for_file(private).private_pem == platform_key.private_pem
    assert ring.signing_key.kid != registration_kid, "the tool's own newest key signs by default"


class TestRegistrationKeysFromToolConfig:
    @pytest.fixture
    def app_overrides(self, tmp_path, platform, platform_key):
        """A TOOL_CONFIG naming its own key pair, with paths relative to the file."""
        config_dir = tmp_path / "config"
        write_pair(config_dir / "keys", platform_key)
        entry = {**platform.registration_args(), "private_key_file": "keys/moodle_private.pem",
                 "public_key_file": "keys/moodle_public.pem"}
        config = config_dir / "tool_config.json"
        config.write_text(json.dumps({platform.issuer: [entry]}))
        return {"TOOL_CONFIG": str(config)}

    def test_registration_key_is_published_and_signs_for_its_registration(self, app, client, platform,
                                                                         platform_key):
        registration_kid = rfc7638_thumbprint(platform_key.private_pem)
        kids = [key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]]
        assert registration_kid in kids
        assert app.extensions["key_ring"].signing_key.kid in kids
        store = app.extensions["registrations"]
        registration = store.find(platform.issuer, platform.client_id)
        assert store.signing_key_for(registration).kid == registration_kid
        pylti = store.find_registration_by_params(platform.issuer, platform.client_id)
        assert pylti.get_tool_private_key() == platform_key.private_pem.decode()


# --- broken key files -------------------------------------------------------------------------
def ec_private_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def encrypted_pem(signing_key) -> bytes:
    return signing_key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


@pytest.mark.parametrize(
    "content",
    [
        lambda key: b"this is not a key\n",
        lambda key: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        lambda key: b"",
        lambda key: encrypted_pem(key),
        lambda key: ec_private_pem(),
    ],
    ids=["garbage", "truncated-pem", "empty", "encrypted", "not-rsa"],
)
def test_unusable_key_file_gives_a_clear_error_naming_it(tmp_path, platform_key, content):
    bad = tmp_path / "tool-20200101T000000000000Z.pem"
    bad.write_bytes(content(platform_key))
    with pytest.raises(ValueError) as raised:
        KeyRing(tmp_path).ensure_keys()
    message = str(raised.value)
    assert str(bad) in message and "RSA" in message
    assert not message.startswith("'"), "the message must read as a sentence, not a repr"


def test_unusable_registration_key_file_gives_a_clear_error_naming_it(tmp_path, ring_dir):
    bad = tmp_path / "registration.pem"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="registration.pem"):
        KeyRing(ring_dir, [str(bad)]).ensure_keys()


def test_unreadable_key_file_gives_a_clear_error_naming_it(tmp_path):
    unreadable = tmp_path / "tool-20200101T000000000000Z.pem"
    unreadable.mkdir()  # reading it fails whatever the user (tests may run as root)
    with pytest.raises(ValueError, match="cannot read") as raised:
        KeyRing(tmp_path).ensure_keys()
    assert str(unreadable) in str(raised.value)
