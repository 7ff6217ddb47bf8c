"""The peer of the launch benchmark (issue 12): a minimal LTI 1.3 tool built the way pylti1p3's
own Flask adapter is meant to be used (its documentation and example app), against the same
fake platform: POST /login (FlaskOIDCLogin) and POST /launch (FlaskMessageLaunch), answering a
small page.

pylti1p3's defaults are kept: the state in a cookie, the nonce, the state's parameters and the
launch data in Flask's session (a signed cookie, SessionDataStorage). So, compared with the tool,
it skips: single-use nonces shared by all workers (the nonce lives in the browser's own cookie
and is never spent: the same id_token, state and cookies can be posted again), a state bound to
a secret the server keeps (the cookie holds the state itself), any record of the launch in a
database. Not used either: pylti1p3's "cookies allowed" JavaScript check page, an extra round
trip in a real browser (`enable_check_cookies()`).

Registration values come from the environment the benchmark sets (BENCH_ISSUER,
BENCH_CLIENT_ID, BENCH_DEPLOYMENT_ID, BENCH_AUTH_LOGIN_URL, BENCH_AUTH_TOKEN_URL,
BENCH_JWKS_URL, BENCH_SECRET_KEY). The platform's JWKS is fetched once per process and put in
the registration (`key_set`); left to itself pylti1p3 fetches it on every launch unless a
cache is configured with `set_public_key_caching`.
"""
from __future__ import annotations

import html
import os

import requests
from flask import Flask
from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.tool_config import ToolConfDict

app = Flask(__name__)
app.secret_key = os.environ.get("BENCH_SECRET_KEY", "bench-peer-secret-key")
_tool_conf: list[ToolConfDict] = []  # built once per worker process


def tool_conf() -> ToolConfDict:
    if not _tool_conf:
        jwks = requests.get(os.environ["BENCH_JWKS_URL"], timeout=5).json()
        _tool_conf.append(ToolConfDict({os.environ["BENCH_ISSUER"]: {
            "client_id": os.environ["BENCH_CLIENT_ID"],
            "auth_login_url": os.environ["BENCH_AUTH_LOGIN_URL"],
            "auth_token_url": os.environ["BENCH_AUTH_TOKEN_URL"],
            "key_set_url": os.environ["BENCH_JWKS_URL"],
            "key_set": jwks,
            "deployment_ids": [os.environ["BENCH_DEPLOYMENT_ID"]],
        }}))
    return _tool_conf[0]


@app.get("/")
def ready():
    return "peer"


@app.route("/login", methods=["GET", "POST"])
def login():
    flask_request = FlaskRequest()
    target_link_uri = flask_request.get_param("target_link_uri")
    if not target_link_uri:
        return "missing target_link_uri", 400
    try:
        return FlaskOIDCLogin(flask_request, tool_conf()).redirect(target_link_uri)
    except (LtiException, OIDCException) as exc:
        return f"login refused: {html.escape(str(exc))}", 400


@app.post("/launch")
def launch():
    try:
        claims = FlaskMessageLaunch(FlaskRequest(), tool_conf()).get_launch_data()
    except LtiException as exc:
        return f"launch refused: {html.escape(str(exc))}", 401
    return f"<!doctype html><title>Launched</title><p>Hello {html.escape(str(claims.get('name', '')))}</p>"
