"""The id_token reader (lti/id_token.py) against PyJWT, which the launch used before: every
token PyJWT refuses is refused, every one it accepts is accepted with the same claims, and
under the same rule (PyJWT's exception names). The launch's own refusals over real HTTP are in
test_launch.py; this is the reader alone, token by token.
"""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from lti_tool.lti import id_token
from tests.fakes.lti_platform import SigningKey, encode_jws

ISSUER, CLIENT = "https://moodle.example.edu", "client-1"
REQUIRE = ("exp", "iat", "iss", "aud", "nonce")
KEY = SigningKey()
OTHER_KEY = SigningKey()


def claims(**changes) -> dict:
    now = int(time.time())
    # Built when the tests are collected: an hour of life outlasts any run of the suite.
    body = {"iss": ISSUER, "aud": CLIENT, "sub": "2", "nonce": "n", "iat": now, "exp": now + 3600}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def signed(body: dict, header: dict | None = None, key: SigningKey = KEY) -> str:
    return encode_jws(header or {"alg": "RS256", "kid": KEY.kid, "typ": "JWT"}, body, key.signer())


def swap_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pyjwt(token: str):
    try:
        return jwt.decode(token, KEY.public_key, algorithms=["RS256"], audience=CLIENT, issuer=ISSUER,
                          leeway=0, options={"require": list(REQUIRE)})
    except jwt.PyJWTError as exc:
        return exc


def ours(token: str):
    try:
        parsed = id_token.parse(token)
        return id_token.verify(parsed, KEY.public_key, audience=CLIENT, issuer=ISSUER, leeway=0, require=REQUIRE)
    except id_token.TokenError as exc:
        return exc


VALID = signed(claims())
TOKENS = {
    "valid": VALID,
    "audience in a list": signed(claims(aud=["other", CLIENT])),
    "wrong audience": signed(claims(aud="other")),
    "audience list with a number": signed(claims(aud=[CLIENT, 3])),
    "wrong issuer": signed(claims(iss="https://evil.example")),
    "issuer not a string": signed(claims(iss=["x"])),
    "expired": signed(claims(exp=int(time.time()) - 5)),
    "exp not a number": signed(claims(exp="soon")),
    "exp as digits": signed(claims(exp=str(int(time.time()) + 3600))),
    "iat in the future": signed(claims(iat=int(time.time()) + 3600)),
    "iat not a number": signed(claims(iat="x")),
    "nbf in the future": signed(claims(nbf=int(time.time()) + 3600)),
    "no nonce": signed(claims(nonce=None)),
    "no exp": signed(claims(exp=None)),
    "sub not a string": signed(claims(sub=5)),
    "jti not a string": signed(claims(jti=5)),
    "signed by another key": signed(claims(), key=OTHER_KEY),
    "claims changed after signing": swap_segment(VALID, 1, b64(json.dumps(claims(sub="9")).encode())),
    "payload not an object": swap_segment(VALID, 1, b64(b"[1]")),
    "payload not JSON": swap_segment(VALID, 1, b64(b"{nope")),
    "header not JSON": swap_segment(VALID, 0, b64(b"{nope")),
    "deeply nested payload": swap_segment(VALID, 1, b64(b"[" * 20000)),
    "character outside base64url": swap_segment(VALID, 1, VALID.split(".")[1][:-1] + "!"),
    "padded segments": ".".join(part + "=" * (-len(part) % 4) for part in VALID.split(".")),
    "four segments": VALID + ".x",
    "two segments": VALID.rsplit(".", 1)[0],
    "empty signature": VALID.rsplit(".", 1)[0] + ".",
    "crit header": signed(claims(), {"alg": "RS256", "kid": KEY.kid, "crit": ["exp"]}),
    "not a token": "hello",
}


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def noncanonical(token: str) -> str:
    """The signature's last character with a bit no encoder sets (256 bytes leave 4 unused
    bits there): the same bytes once decoded, but not the token that was signed."""
    head, signature = token.rsplit(".", 1)
    return f"{head}.{signature[:-1]}{ALPHABET[ALPHABET.index(signature[-1]) | 1]}"


TOKENS["stray bits in the last character"] = noncanonical(VALID)


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_the_reader_accepts_and_refuses_what_pyjwt_does(name):
    token = TOKENS[name]
    expected, got = pyjwt(token), ours(token)
    if isinstance(expected, Exception):
        assert isinstance(got, id_token.TokenError), f"{name}: PyJWT refused ({expected!r}), the reader accepted"
    else:
        assert got == expected, f"{name}: PyJWT accepted, the reader said {got!r}"


@pytest.mark.parametrize("name, rule", [
    ("expired", "ExpiredSignatureError"), ("wrong audience", "InvalidAudienceError"),
    ("wrong issuer", "InvalidIssuerError"), ("signed by another key", "InvalidSignatureError"),
    ("no nonce", "MissingRequiredClaimError"), ("iat in the future", "ImmatureSignatureError"),
])
def test_a_refusal_names_the_rule_as_pyjwt_does(name, rule):
    assert type(ours(TOKENS[name])).__name__ == type(pyjwt(TOKENS[name])).__name__ == rule


def test_the_header_and_claims_come_from_one_parse():
    parsed = id_token.parse(VALID)
    assert parsed.header["kid"] == KEY.kid and parsed.claims["nonce"] == "n"
