"""An id_token read once: header and claims from one parse, then its RS256 signature and its
registered claims (exp, iat, nbf, iss, aud, sub, jti) checked once.

PyJWT decoded a launch's token three times (header, unverified claims to find the
registration, verified claims), each time checking the 4 KB token against the base64url
alphabet one character at a time in Python (0.24 ms a parse). Here the segments are checked by
one regular expression and decoded by the C base64 and JSON decoders; the claim checks are
PyJWT's (2.x) rules, named after its exceptions so log lines read the same.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# A compact JWS segment: the base64url alphabet, with the padding some issuers add anyway.
SEGMENT = re.compile(rb"[A-Za-z0-9_-]*={0,2}")


class TokenError(ValueError):
    """The token is refused; the class name says which rule (PyJWT's names)."""


class DecodeError(TokenError):
    pass


class InvalidSignatureError(TokenError):
    pass


class MissingRequiredClaimError(TokenError):
    pass


class ExpiredSignatureError(TokenError):
    pass


class ImmatureSignatureError(TokenError):
    pass


class InvalidIssuedAtError(TokenError):
    pass


class InvalidIssuerError(TokenError):
    pass


class InvalidAudienceError(TokenError):
    pass


class InvalidClaimError(TokenError):
    pass


@dataclass(frozen=True)
class IdToken:
    header: dict
    claims: dict  # not to be trusted before `verify`
    signing_input: bytes
    signature: bytes


def _segment(data: bytes, name: str) -> bytes:
    """One base64url segment, decoded; refused unless it is the canonical encoding."""
    stripped = data.rstrip(b"=")
    if not SEGMENT.fullmatch(data) or len(stripped) % 4 == 1 or (data != stripped and len(data) % 4):
        raise DecodeError(f"Invalid {name} padding")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except binascii.Error as exc:
        raise DecodeError(f"Invalid {name} padding") from exc
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:  # stray bits in the last character
        raise DecodeError(f"Invalid {name} padding")
    return decoded


def _json_object(data: bytes, name: str) -> dict:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # 20,000 nested "[" recurse
        raise DecodeError(f"Invalid {name} string: {exc}") from exc
    if not isinstance(value, dict):
        raise DecodeError(f"Invalid {name} string: must be a json object")
    return value


def parse(token: str) -> IdToken:
    """Header, claims and signature of a compact JWS, from one pass over the token."""
    raw = token.encode("utf-8", "replace") if isinstance(token, str) else token
    if not isinstance(raw, bytes):
        raise DecodeError("Invalid token type")
    if raw.count(b".") != 2:
        raise DecodeError("A JWT has three segments")
    signing_input, signature = raw.rsplit(b".", 1)
    header_segment, payload_segment = signing_input.split(b".", 1)
    header = _json_object(_segment(header_segment, "header"), "header")
    if "crit" in header or header.get("b64", True) is not True:
        raise DecodeError("Unsupported header: crit or b64 (no JWS extension is understood here)")
    claims = _json_object(_segment(payload_segment, "payload"), "payload")
    return IdToken(header, claims, signing_input, _segment(signature, "crypto"))


def verify(token: IdToken, key, *, audience: str, issuer: str, leeway: float, require: tuple[str, ...]) -> dict:
    """The claims, once the RS256 signature checks out with `key` (a PyJWK or an RSA public
    key) and the registered claims hold; TokenError otherwise."""
    public_key = getattr(key, "key", key)
    if not isinstance(public_key, RSAPublicKey):
        raise InvalidSignatureError("The key is not an RSA public key")
    try:
        public_key.verify(token.signature, token.signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise InvalidSignatureError("Signature verification failed") from exc
    check_claims(token.claims, audience=audience, issuer=issuer, leeway=leeway, require=require)
    return token.claims


def _time(claims: dict, name: str, error: type[TokenError], message: str) -> int | None:
    """A time claim as PyJWT reads it (`int()`: whole seconds), or None when absent."""
    if name not in claims:
        return None
    try:
        return int(claims[name])
    except (ValueError, TypeError, OverflowError):
        raise error(message) from None


def _check_times(claims: dict, now: float, leeway: float) -> None:
    iat = _time(claims, "iat", InvalidIssuedAtError, "Issued At claim (iat) must be an integer.")
    if iat is not None and iat > now + leeway:
        raise ImmatureSignatureError("The token is not yet valid (iat)")
    nbf = _time(claims, "nbf", DecodeError, "Not Before claim (nbf) must be an integer.")
    if nbf is not None and nbf > now + leeway:
        raise ImmatureSignatureError("The token is not yet valid (nbf)")
    exp = _time(claims, "exp", DecodeError, "Expiration Time claim (exp) must be an integer.")
    if exp is not None and exp <= now - leeway:
        raise ExpiredSignatureError("Signature has expired")


def _check_audience(claims: dict, audience: str) -> None:
    audiences = claims.get("aud")
    if not audiences:
        raise MissingRequiredClaimError('Token is missing the "aud" claim')
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise InvalidAudienceError("Invalid claim format in token")
    if audience not in audiences:
        raise InvalidAudienceError("Audience doesn't match")


def check_claims(claims: dict, *, audience: str, issuer: str, leeway: float, require: tuple[str, ...]) -> None:
    for name in require:
        if claims.get(name) is None:
            raise MissingRequiredClaimError(f'Token is missing the "{name}" claim')
    _check_times(claims, time.time(), leeway)
    if not isinstance(claims.get("iss"), str):
        raise InvalidIssuerError("Payload Issuer (iss) must be a string")
    if claims["iss"] != issuer:
        raise InvalidIssuerError("Invalid issuer")
    _check_audience(claims, audience)
    if "sub" in claims and not isinstance(claims["sub"], str):
        raise InvalidClaimError("Subject must be a string")
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise InvalidClaimError("JWT ID must be a string")
