"""The floor of the launch benchmark (issue 12): a bare Flask app that only verifies the same
RS256 id_token the tool verifies, with PyJWT, and answers a small page. No login step, no
state, no nonce, no database: whatever a launch costs above this is the price of LTI's other
checks and of what the tool records.

Served by gunicorn like the tool (bench/launch.py starts it: `gunicorn bench.floor_app:app`).
The registration comes from the environment the benchmark sets (BENCH_ISSUER, BENCH_CLIENT_ID,
BENCH_DEPLOYMENT_ID, BENCH_JWKS_URL); the platform's keys are fetched once per process, on the
first launch, and kept, as a real tool would.
"""
from __future__ import annotations

import html
import os

import jwt
import requests
from flask import Flask, request

DEPLOYMENT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"

app = Flask(__name__)
_public_keys: dict[str, object] = {}  # kid -> key, per worker process


def _public_key(kid: str):
    if kid not in _public_keys:
        answer = requests.get(os.environ["BENCH_JWKS_URL"], timeout=5)
        for jwk in answer.json()["keys"]:
            _public_keys[jwk["kid"]] = jwt.PyJWK(jwk).key
    return _public_keys[kid]


@app.get("/")
def ready():
    return "floor"


@app.post("/launch")
def launch():
    token = request.form.get("id_token", "")
    try:
        kid = jwt.get_unverified_header(token).get("kid", "")
        claims = jwt.decode(token, _public_key(kid), algorithms=["RS256"],
                            audience=os.environ["BENCH_CLIENT_ID"], issuer=os.environ["BENCH_ISSUER"])
    except (jwt.InvalidTokenError, KeyError) as exc:
        return f"launch refused: {html.escape(str(exc))}", 401
    if claims.get(DEPLOYMENT_CLAIM) != os.environ["BENCH_DEPLOYMENT_ID"]:
        return "launch refused: unknown deployment", 401
    return f"<!doctype html><title>Launched</title><p>Hello {html.escape(str(claims.get('name', '')))}</p>"
