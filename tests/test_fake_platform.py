"""The fake LTI platform behaves like the captured Moodle 4.5 (tests/fixtures/moodle/).

These tests hold the fake to the fixtures, so that the tool's launch and grade tests, which run
against the fake, say something about the real Moodle: payload shapes, Moodle's refusals, the
score rules and NRPS paging.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from flask import Flask, redirect, request, session

from tests.fakes.http_server import ServedApp
from tests.fakes.lti_platform import (
    CLAIM_AGS,
    CLAIM_CUSTOM,
    CLAIM_DL_CONTENT_ITEMS,
    CLAIM_DL_DATA,
    CLAIM_DL_SETTINGS,
    CLAIM_FOR_USER,
    CLAIM_ROLES,
    DEEP_LINKING_REQUEST,
    GRADE_SYNC_ONLY_SCOPES,
    LINEITEM,
    LINEITEM_CONTAINER,
    MEMBERSHIP_CONTAINER,
    RESULT_CONTAINER,
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READ,
    SCOPE_NRPS,
    SCOPE_SCORE,
    SCORE,
    SUBMISSION_REVIEW_REQUEST,
    TOOL_SCOPES,
    AuthorizationRefused,
    FakePlatform,
    SigningKey,
    query_of,
)

FIXTURES = Path(__file__).parent / "fixtures" / "moodle"
TOOL_KEY = SigningKey(kid="tool-key-1")  # the tool's key pair, made once for the whole module
PLATFORM_KEY = SigningKey()  # shared by the platforms below: RSA key generation is slow


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def tool_jwks() -> dict:
    return {"keys": [TOOL_KEY.jwk()]}


@pytest.fixture
def platform():
    with FakePlatform(tool_base_url="http://127.0.0.1:5000", tool_jwks=tool_jwks,
                      signing_key=PLATFORM_KEY) as lms:
        yield lms


# --------------------------------------------------------------------------- helpers
def auth_query(fields: dict, **changes) -> dict:
    """The query a pylti1p3 tool redirects the browser with after a login initiation."""
    query = {
        "scope": "openid", "response_type": "id_token", "response_mode": "form_post",
        "prompt": "none", "client_id": fields["client_id"],
        "redirect_uri": fields["target_link_uri"], "login_hint": fields["login_hint"],
        "lti_message_hint": fields["lti_message_hint"], "state": "state-" + uuid.uuid4().hex,
        "nonce": uuid.uuid4().hex,
    }
    query.update(changes)
    return {name: value for name, value in query.items() if value is not None}


def launch_claims(lms: FakePlatform, **login) -> dict:
    form = lms.authorize(auth_query(lms.login_initiation(**login)))
    return verified(lms, form["id_token"])


def verified(lms: FakePlatform, id_token: str) -> dict:
    keys = jwt.PyJWKClient(lms.key_set_url).get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, keys.key, algorithms=["RS256"], audience=lms.client_id,
                      issuer=lms.issuer)


def client_assertion(lms: FakePlatform, key: SigningKey = TOOL_KEY, **claims) -> str:
    now = int(time.time())
    payload = {"iss": lms.client_id, "sub": lms.client_id, "aud": lms.auth_token_url,
               "iat": now, "exp": now + 60, "jti": "jti-" + uuid.uuid4().hex}
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


def request_token(lms: FakePlatform, scopes=TOOL_SCOPES, assertion: str | None = None,
                  **form) -> requests.Response:
    body = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion or client_assertion(lms), "scope": " ".join(scopes)}
    body.update(form)
    return requests.post(lms.auth_token_url, data=body)


def bearer(lms: FakePlatform, scopes=TOOL_SCOPES) -> dict:
    return {"Authorization": "Bearer " + request_token(lms, scopes).json()["access_token"]}


def post_score(lms: FakePlatform, headers: dict, url: str | None = None, **score):
    body = {"userId": "4", "scoreGiven": 80.0, "scoreMaximum": 100.0,
            "timestamp": "2026-11-21T22:31:03+00:00", "activityProgress": "Completed",
            "gradingProgress": "FullyGraded", "comment": "harness raw score"}
    body.update(score)
    return requests.post(url or lms.scores_url("2"), data=json.dumps(body),
                         headers={**headers, "Content-Type": SCORE})


def key_shape(value):
    """Keys of a JSON value, nested, so payloads compare by shape rather than by content."""
    if isinstance(value, dict):
        return {name: key_shape(item) for name, item in value.items()}
    return type(value).__name__


# --------------------------------------------------------------------------- keys
def test_jwks_publishes_an_rs256_key_shaped_like_moodles(platform):
    answer = requests.get(platform.key_set_url)
    (published,) = answer.json()["keys"]
    (moodle,) = fixture("moodle_jwks.json")["keys"]
    assert list(published) == list(moodle)
    assert published["kid"] == platform.signing_key.kid and published["use"] == "sig"
    assert platform.jwks_requests == 1


def test_rotated_key_signs_and_both_keys_are_published(platform):
    old_kid = platform.signing_key.kid
    new_kid = platform.rotate_key()
    published = [key["kid"] for key in requests.get(platform.key_set_url).json()["keys"]]
    assert published == [old_kid, new_kid]
    assert jwt.get_unverified_header(platform.make_id_token())["kid"] == new_kid


def test_serve_keys_controls_what_the_jwks_publishes(platform):
    old_kid = platform.signing_key.kid
    new_kid = platform.rotate_key()
    platform.serve_keys([new_kid])
    assert [k["kid"] for k in requests.get(platform.key_set_url).json()["keys"]] == [new_kid]
    platform.serve_keys(None)
    assert [k["kid"] for k in requests.get(platform.key_set_url).json()["keys"]] == [
        old_kid, new_kid]
    assert platform.jwks_requests == 2


def test_openid_configuration_has_moodles_shape(platform):
    served = requests.get(platform.openid_configuration_url).json()
    assert key_shape(served) == key_shape(fixture("openid_configuration.json"))
    assert served["issuer"] == platform.issuer and served["jwks_uri"] == platform.key_set_url


def test_registration_args_are_a_pylti1p3_client_entry(platform):
    assert platform.registration_args() == {
        "client_id": "0HhnTZLx91sBpA2", "auth_login_url": platform.issuer + "/mod/lti/auth.php",
        "auth_token_url": platform.issuer + "/mod/lti/token.php",
        "key_set_url": platform.issuer + "/mod/lti/certs.php", "deployment_ids": ["1"],
        "default": True,
    }


# --------------------------------------------------------------------------- launches
def test_login_initiation_has_moodles_fields(platform):
    fields = platform.login_initiation(user="student")
    captured = fixture("oidc_login_initiation_resource_link.json")["params"]
    assert list(fields) == list(captured)
    assert fields["login_hint"] == "4" and fields["iss"] == platform.issuer
    assert fields["target_link_uri"] == "http://127.0.0.1:5000/lti/launch"
    hint = json.loads(fields["lti_message_hint"])
    assert hint["cmid"] == 2 and hint["launchid"].startswith("ltilaunch1_")


def test_deep_linking_login_hint_names_a_content_item_selection(platform):
    fields = platform.login_initiation(message_type=DEEP_LINKING_REQUEST)
    hint = json.loads(fields["lti_message_hint"])
    assert list(hint) == ["launchid"]
    assert hint["launchid"].startswith("ltilaunch_ContentItemSelectionRequest")


def test_teacher_resource_launch_matches_the_captured_id_token(platform):
    fields = platform.login_initiation(user="teacher")
    query = auth_query(fields)
    form = platform.authorize(query)
    captured = fixture("id_token_teacher_resource.json")
    claims = verified(platform, form["id_token"])
    assert key_shape(claims) == key_shape(captured["payload"])
    assert list(jwt.get_unverified_header(form["id_token"])) == list(captured["header"])
    assert form["state"] == query["state"] and form["action"] == query["redirect_uri"]
    assert claims["nonce"] == query["nonce"] and claims["exp"] - claims["iat"] == 60
    assert claims[CLAIM_ROLES] == captured["payload"][CLAIM_ROLES]
    assert claims[CLAIM_AGS]["lineitem"] == (
        f"{platform.issuer}/mod/lti/services.php/2/lineitems/2/lineitem?type_id=1")


@pytest.mark.parametrize("user, captured_file", [
    ("student", "id_token_student_4_resource.json"),
    ("student5", "id_token_student_5_resource.json"),
    ("student6", "id_token_student_6_resource.json"),
    ("admin", "id_token_admin_resource.json"),
])
def test_each_captured_user_launches_with_moodles_identity_and_roles(platform, user,
                                                                     captured_file):
    claims = launch_claims(platform, user=user)
    captured = fixture(captured_file)["payload"]
    assert key_shape(claims) == key_shape(captured)
    for name in ("sub", "name", "given_name", "family_name", "email", CLAIM_ROLES):
        assert claims[name] == captured[name]


def test_deep_linking_launch_matches_the_captured_id_token(platform):
    claims = launch_claims(platform, message_type=DEEP_LINKING_REQUEST)
    captured = fixture("id_token_teacher_deeplink.json")["payload"]
    assert key_shape(claims) == key_shape(captured)
    assert "lineitem" not in claims[CLAIM_AGS]
    assert claims[CLAIM_DL_SETTINGS]["deep_link_return_url"].startswith(
        platform.issuer + "/mod/lti/contentitem_return.php?course=2&id=1")


def test_custom_parameters_come_with_the_memberships_url(platform):
    claims = launch_claims(platform, user="student5", custom={"provider": "livekit"})
    assert claims[CLAIM_CUSTOM] == {
        "provider": "livekit", "context_memberships_url": platform.memberships_url("2")}


def test_resource_link_custom_parameters_reach_the_launch(platform):
    platform.add_resource_link("7", "BBB room", custom={"provider": "bbb"})
    claims = launch_claims(platform, resource_link_id="7")
    assert claims[CLAIM_CUSTOM]["provider"] == "bbb"
    assert claims[CLAIM_AGS]["lineitem"] == platform.lineitem_url("3")


@pytest.mark.parametrize("change, error", [
    ({"redirect_uri": "http://127.0.0.1:5000/evil"}, "redirect_uri"),
    ({"nonce": None}, "nonce"),
    ({"client_id": "someone-else"}, "unauthorized_client"),
    ({"scope": "openid profile"}, "invalid_scope"),
    ({"response_type": "code"}, "unsupported_response_type"),
    ({"response_mode": "query"}, "response_mode"),
    ({"prompt": "login"}, "prompt"),
    ({"login_hint": "5"}, "access_denied"),
    ({"lti_message_hint": '{"launchid":"ltilaunch1_0"}'}, "lti_message_hint"),
    ({"lti_message_hint": "not json"}, "launch id"),
])
def test_auth_endpoint_refuses_what_moodle_refuses(platform, change, error):
    query = auth_query(platform.login_initiation(), **change)
    with pytest.raises(AuthorizationRefused) as refusal:
        platform.authorize(query)
    assert refusal.value.status == 400 and error in refusal.value.message


def test_a_launch_id_serves_one_authorization_only(platform):
    fields = platform.login_initiation()
    platform.authorize(auth_query(fields))
    with pytest.raises(AuthorizationRefused):
        platform.authorize(auth_query(fields))


def test_extra_registered_redirect_uri_is_accepted(platform):
    platform.redirect_uris.append("http://127.0.0.1:5000/lti/launch2")
    fields = platform.login_initiation()
    form = platform.authorize(auth_query(fields, redirect_uri="http://127.0.0.1:5000/lti/launch2"))
    assert form["action"] == "http://127.0.0.1:5000/lti/launch2"


# --------------------------------------------------------------------------- forged id_tokens
def test_make_id_token_overrides_and_deletes_claims_and_header(platform):
    token = platform.make_id_token(user="student", claims={"aud": "other", "email": None},
                                   header={"kid": "nope"}, exp_in=-30)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["aud"] == "other" and "email" not in payload and payload["sub"] == "4"
    assert payload["exp"] - payload["iat"] == -30
    assert jwt.get_unverified_header(token)["kid"] == "nope"


def test_unforged_id_token_verifies_against_the_jwks(platform):
    claims = verified(platform, platform.make_id_token(user="admin", nonce="n-1"))
    assert claims["nonce"] == "n-1" and claims["sub"] == "2"


def test_alg_none_token_carries_no_signature(platform):
    token = platform.token_alg_none(user="admin")
    assert jwt.get_unverified_header(token)["alg"] == "none" and token.endswith(".")
    with pytest.raises(jwt.PyJWTError):
        verified(platform, token)


def test_hs256_token_is_keyed_with_the_public_pem(platform):
    token = platform.token_hs256_with_public_key(user="student")
    signing_input, signature = token.rsplit(".", 1)
    expected = hmac.new(platform.signing_key.public_pem, signing_input.encode(),
                        hashlib.sha256).digest()
    assert jwt.utils.base64url_decode(signature) == expected
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_from_an_unknown_key_does_not_verify(platform):
    stray = platform.token_signed_by_unknown_key()
    assert jwt.get_unverified_header(stray)["kid"] not in [k.kid for k in platform.keys]
    impostor = platform.token_signed_by_unknown_key(reuse_kid=True)
    with pytest.raises(jwt.InvalidSignatureError):
        verified(platform, impostor)


# --------------------------------------------------------------------------- token endpoint
def test_token_endpoint_answers_like_moodle(platform):
    answer = request_token(platform)
    captured = fixture("access_token_response.json")["response"]["body"]
    assert answer.status_code == 200
    assert list(answer.json()) == list(captured)
    assert answer.json()["token_type"] == "Bearer" and answer.json()["expires_in"] == 3600
    assert answer.json()["scope"] == captured["scope"]
    assert platform.token_requests == 1 and platform.issued_tokens[0]["scopes"] == TOOL_SCOPES


def test_token_endpoint_grants_only_permitted_scopes(platform):
    answer = request_token(platform, [SCOPE_NRPS, "https://example.com/scope/other"])
    assert answer.json()["scope"] == SCOPE_NRPS
    refused = request_token(platform, ["https://example.com/scope/other"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"


def test_token_endpoint_takes_form_bodies_only(platform):
    body = {"grant_type": "client_credentials", "client_assertion": client_assertion(platform)}
    answer = requests.post(platform.auth_token_url, json=body)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


@pytest.mark.parametrize("claims", [
    {"aud": "http://127.0.0.1:5000/elsewhere"},
    {"exp": int(time.time()) - 60},
    {"iss": "someone-else"},
    {"sub": "someone-else"},
    {"jti": None},
])
def test_token_endpoint_refuses_a_bad_client_assertion(platform, claims):
    answer = request_token(platform, assertion=client_assertion(platform, **claims))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client"


def test_token_endpoint_accepts_the_issuer_as_audience(platform):
    answer = request_token(platform, assertion=client_assertion(platform, aud=platform.issuer))
    assert answer.status_code == 200


def test_token_endpoint_refuses_an_assertion_signed_by_another_key(platform):
    stranger = SigningKey(kid=TOOL_KEY.kid)
    answer = request_token(platform, assertion=client_assertion(platform, key=stranger))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client"


def test_token_endpoint_refuses_a_replayed_jti(platform):
    assertion = client_assertion(platform)
    assert request_token(platform, assertion=assertion).status_code == 200
    replay = request_token(platform, assertion=assertion)
    assert replay.status_code == 400 and "jti" in replay.json()["error_description"]


def test_token_endpoint_refuses_other_grant_types(platform):
    answer = request_token(platform, grant_type="password")
    assert answer.status_code == 400 and answer.json()["error"] == "unsupported_grant_type"


def test_token_endpoint_fetches_the_tool_jwks_from_a_url():
    tool = Flask("tool_keys")
    tool.get("/.well-known/jwks.json")(tool_jwks)
    with ServedApp(tool) as served, FakePlatform(
            tool_jwks=served.url + "/.well-known/jwks.json", signing_key=PLATFORM_KEY) as lms:
        assert request_token(lms).status_code == 200


# --------------------------------------------------------------------------- AGS
def test_lineitems_and_lineitem_answer_like_moodle(platform):
    headers = bearer(platform, [SCOPE_LINEITEM_READ])
    listing = requests.get(platform.lineitems_url(),
                           headers={**headers, "Accept": LINEITEM_CONTAINER})
    single = requests.get(platform.lineitem_url("2"), headers={**headers, "Accept": LINEITEM})
    for answer, captured in ((listing, "ags_lineitems_get.json"),
                             (single, "ags_lineitem_get.json")):
        expected = json.loads(json.dumps(fixture(captured)["response"]["body"]).replace(
            "http://127.0.0.1:8090", platform.issuer))
        assert answer.status_code == 200 and answer.json() == expected
        assert answer.headers["Content-Type"] == (
            fixture(captured)["response"]["headers"]["Content-Type"])


def test_lineitems_refuse_a_wildcard_accept_like_moodle(platform):
    answer = requests.get(platform.lineitems_url(), headers={**bearer(platform), "Accept": "*/*"})
    assert answer.status_code == 400


@pytest.mark.parametrize("url_of, status", [
    (lambda lms: lms.lineitem_url("2"), 401),
    (lambda lms: lms.results_url("2"), 403),
    (lambda lms: lms.memberships_url("2"), 403),
])
def test_services_refuse_a_missing_token_or_scope_with_moodles_status(platform, url_of, status):
    url = url_of(platform)
    accept = {"Accept": RESULT_CONTAINER} if "/results" in url else {}
    no_token = requests.get(url, headers=accept)
    wrong_scope = requests.get(url, headers={**accept, **bearer(platform, [SCOPE_SCORE])})
    assert (no_token.status_code, wrong_scope.status_code) == (status, status)


def test_single_lineitem_takes_a_wildcard_accept(platform):
    answer = requests.get(platform.lineitem_url("2"), headers={**bearer(platform), "Accept": "*/*"})
    assert answer.status_code == 200


def test_expired_access_token_is_refused(platform):
    headers = bearer(platform)
    platform.expire_access_tokens()
    assert requests.get(platform.lineitem_url("2"), headers=headers).status_code == 401


def test_services_without_type_id_are_refused(platform):
    lineitem, results = (url.split("?")[0] for url in (platform.lineitem_url("2"),
                                                          platform.results_url("2")))
    assert requests.get(lineitem, headers=bearer(platform)).status_code == 401
    assert requests.get(results, headers={**bearer(platform), "Accept": RESULT_CONTAINER}
                        ).status_code == 403


def test_line_items_can_be_created_filtered_and_updated(platform):
    headers = {**bearer(platform), "Content-Type": LINEITEM}
    body = {"label": "Attendance", "scoreMaximum": 10, "tag": "attendance", "resourceLinkId": "1"}
    created = requests.post(platform.lineitems_url(), data=json.dumps(body), headers=headers)
    assert created.status_code == 201 and created.json()["id"] == platform.lineitem_url("3")
    tagged = requests.get(platform.lineitems_url() + "&tag=attendance",
                          headers={**bearer(platform), "Accept": LINEITEM_CONTAINER})
    assert [item["label"] for item in tagged.json()] == ["Attendance"]
    updated = requests.put(created.json()["id"], headers=headers,
                           data=json.dumps({"label": "Presence", "scoreMaximum": 20}))
    assert updated.json()["label"] == "Presence" and updated.json()["scoreMaximum"] == 20


def test_accepted_score_gets_an_empty_200_and_lands_in_the_gradebook(platform):
    answer = post_score(platform, bearer(platform, [SCOPE_SCORE]))
    assert answer.status_code == 200 and answer.content == b""
    assert platform.gradebook["4"]["grade"] == 80 and platform.gradebook["4"]["comment"] == (
        "harness raw score")
    assert platform.scores[-1]["userId"] == "4" and platform.scores[-1]["lineitem_id"] == "2"


def test_results_answer_like_moodle(platform):
    post_score(platform, bearer(platform))
    answer = requests.get(platform.results_url("2"),
                          headers={**bearer(platform), "Accept": RESULT_CONTAINER})
    expected = json.loads(json.dumps(fixture("ags_results_get.json")["response"]["body"]).replace(
        "http://127.0.0.1:8090", platform.issuer))
    assert answer.status_code == 200 and answer.json() == expected
    assert answer.headers["Content-Type"].startswith(RESULT_CONTAINER)


def test_score_must_be_later_at_one_second_resolution(platform):
    headers = bearer(platform)
    assert post_score(platform, headers, timestamp="2026-11-21T22:31:03.100Z").status_code == 200
    same_second = post_score(platform, headers, timestamp="2026-11-21T22:31:03.900Z")
    earlier = post_score(platform, headers, timestamp="2026-11-21T22:31:02+00:00")
    later = post_score(platform, headers, timestamp="2026-11-21T22:31:04Z", scoreGiven=90)
    assert (same_second.status_code, earlier.status_code, later.status_code) == (409, 409, 200)
    assert platform.gradebook["4"]["grade"] == 90 and len(platform.scores) == 2


@pytest.mark.parametrize("user_id", ["99", "3", "2"])
def test_score_for_someone_not_gradable_is_refused(platform, user_id):
    # Unknown, the teacher, the (unenrolled) admin: Moodle answers 400 to each.
    assert post_score(platform, bearer(platform), userId=user_id).status_code == 400


def test_score_is_rescaled_to_the_line_items_maximum(platform):
    post_score(platform, bearer(platform), scoreGiven=7, scoreMaximum=10)
    assert platform.gradebook["4"]["grade"] == 70


def test_score_not_fully_graded_stores_an_empty_grade_with_its_comment(platform):
    post_score(platform, bearer(platform), gradingProgress="Pending", comment="joined late")
    assert platform.gradebook["4"]["grade"] is None
    assert platform.gradebook["4"]["comment"] == "joined late"


def test_score_needs_moodles_required_fields_and_media_type(platform):
    headers = bearer(platform)
    assert post_score(platform, headers, activityProgress=None).status_code == 400
    assert post_score(platform, headers, timestamp="yesterday").status_code == 400
    wrong_type = requests.post(platform.scores_url("2"), json={"userId": "4"}, headers=headers)
    assert wrong_type.status_code == 400


def test_scores_url_made_by_appending_to_the_path_keeps_type_id(platform):
    lineitem = platform.lineitem_url("2")
    path, query = lineitem.split("?")
    assert post_score(platform, bearer(platform), url=f"{path}/scores?{query}").status_code == 200
    assert post_score(platform, bearer(platform), url=lineitem + "/scores").status_code >= 400


def test_fail_next_and_down_make_services_unavailable(platform):
    headers = bearer(platform)
    platform.fail_next(2, status=503, retry_after=7)
    first = post_score(platform, headers)
    assert first.status_code == 503 and first.headers["Retry-After"] == "7"
    assert post_score(platform, headers).status_code == 503
    assert post_score(platform, headers).status_code == 200
    platform.down = True
    assert requests.get(platform.lineitem_url("2"), headers=headers).status_code == 503


# --------------------------------------------------------------------------- NRPS
def test_memberships_answer_like_moodle(platform):
    answer = requests.get(platform.memberships_url(), headers={
        **bearer(platform, [SCOPE_NRPS]), "Accept": MEMBERSHIP_CONTAINER})
    expected = json.loads(json.dumps(fixture("nrps_context_memberships.json")["response"]["body"])
                          .replace("http://127.0.0.1:8090", platform.issuer))
    assert answer.status_code == 200 and answer.json() == expected
    assert answer.headers["Content-Type"].startswith(MEMBERSHIP_CONTAINER)


def test_memberships_page_with_limit_and_link_next(platform):
    platform.add_user("late", "7", ["Learner"], "Lou", "Later", "lou@example.com")
    headers = bearer(platform, [SCOPE_NRPS])
    url, seen, pages = platform.memberships_url() + "?limit=2", [], 0
    while url:
        answer = requests.get(url, headers=headers)
        seen += [member["user_id"] for member in answer.json()["members"]]
        url, pages = answer.links.get("next", {}).get("url"), pages + 1
    assert pages == 3 and sorted(seen) == ["3", "4", "5", "6", "7"]


def test_memberships_filter_by_role(platform):
    headers = bearer(platform, [SCOPE_NRPS])
    answer = requests.get(platform.memberships_url() + "?role=Instructor", headers=headers)
    assert [member["user_id"] for member in answer.json()["members"]] == ["3"]
    assert answer.json()["members"][0]["roles"] == ["Instructor"]


# --------------------------------------------------------------------------- whole flows
def make_tool(lms: FakePlatform) -> Flask:
    """A minimal tool: state bound to its session cookie, id_token checked against the JWKS."""
    tool = Flask("minimal_tool")
    tool.secret_key = "test"
    jwks = jwt.PyJWKClient(lms.key_set_url)

    @tool.post("/lti/login")
    def login():
        session["state"], session["nonce"] = uuid.uuid4().hex, uuid.uuid4().hex
        query = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post",
                 "prompt": "none", "client_id": request.form["client_id"],
                 "redirect_uri": request.form["target_link_uri"],
                 "login_hint": request.form["login_hint"],
                 "lti_message_hint": request.form["lti_message_hint"],
                 "state": session["state"], "nonce": session["nonce"]}
        return redirect(lms.auth_login_url + "?" + requests.compat.urlencode(query))

    @tool.post("/lti/launch")
    def launch():
        token = request.form["id_token"]
        claims = jwt.decode(token, jwks.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                            audience=lms.client_id)
        ok = request.form["state"] == session["state"] and claims["nonce"] == session["nonce"]
        return ({"sub": claims["sub"]}, 200) if ok else ("bad state", 400)

    return tool


def test_launch_runs_the_whole_flow_over_http():
    with FakePlatform(signing_key=PLATFORM_KEY) as lms, ServedApp(make_tool(lms)) as served:
        lms.tool_base_url = served.url
        answer = lms.launch(requests.Session(), user="student6")
    assert answer.status_code == 200 and answer.json() == {"sub": "6"}


def test_launch_works_with_a_flask_test_client():
    with FakePlatform(tool_base_url="http://localhost", signing_key=PLATFORM_KEY) as lms:
        answer = lms.launch(make_tool(lms).test_client(), user="teacher")
    assert answer.status_code == 200 and answer.get_json() == {"sub": "3"}


def test_deep_linking_response_is_verified_and_recorded(platform):
    claims = launch_claims(platform, message_type=DEEP_LINKING_REQUEST)
    return_url = claims[CLAIM_DL_SETTINGS]["deep_link_return_url"]
    response = dl_response(platform)
    forged = jwt.encode(response, SigningKey().private_pem, algorithm="RS256",
                        headers={"kid": TOOL_KEY.kid})
    assert requests.post(return_url, data={"JWT": forged}).status_code == 400
    assert requests.post(return_url, data={"JWT": signed(response)}).status_code == 200
    assert platform.deep_link_responses[0][CLAIM_DL_CONTENT_ITEMS][0]["type"] == "ltiResourceLink"


# --------------------------------------------------------------------------- deep linking
def dl_response(lms: FakePlatform, **changes) -> dict:
    """The response Moodle accepted (deep_linking_response_sent.json), made fresh for `lms`."""
    response = fixture("deep_linking_response_sent.json")["decoded"][1]
    now = int(time.time())
    response.update({"iss": lms.client_id, "aud": [lms.issuer], "iat": now, "exp": now + 600,
                     "nonce": uuid.uuid4().hex})
    response[CLAIM_DL_CONTENT_ITEMS][0]["url"] = lms.default_target_link_uri
    return {name: value for name, value in {**response, **changes}.items() if value is not None}


def signed(claims: dict, key: SigningKey = TOOL_KEY) -> str:
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


def select_content(lms: FakePlatform, **login) -> str:
    """The teacher presses "Select content": the return URL of the request Moodle sent."""
    return launch_claims(lms, message_type=DEEP_LINKING_REQUEST, **login)[CLAIM_DL_SETTINGS][
        "deep_link_return_url"]


def test_select_content_from_the_course_adds_the_activity_with_its_own_grade_item(platform):
    return_url = select_content(platform)
    item = {"type": "ltiResourceLink", "title": "Weekly seminar", "url": platform.default_target_link_uri,
            "custom": {"schedule_weeks": "3"},
            "lineItem": {"scoreMaximum": 10, "label": "Attendance", "resourceId": "r1", "tag": "attendance",
                         "submissionReview": {"reviewableStatus": ["Completed"]}}}
    answer = requests.post(return_url, data={"JWT": signed(dl_response(platform, **{CLAIM_DL_CONTENT_ITEMS: [item]}))})
    assert answer.status_code == 200 and "Activity added" in answer.text
    (link,) = platform.created_activities
    assert (link.title, link.custom) == ("Weekly seminar", {"schedule_weeks": "3"})
    line_item = next(i for i in platform.line_items.values() if i.resource_link_id == link.id)
    assert (line_item.label, line_item.score_maximum, line_item.resource_id, line_item.tag) == (
        "Weekly seminar", 10.0, "r1", "attendance")
    assert line_item.coupled and line_item.submission_review == {"reviewableStatus": ["Completed"]}
    claims = launch_claims(platform, resource_link_id=link.id)
    assert claims[CLAIM_AGS]["lineitem"] == platform.lineitem_url(line_item.id)
    assert claims[CLAIM_CUSTOM]["schedule_weeks"] == "3"


def test_select_content_from_the_activity_form_fills_the_form_until_it_is_saved(platform):
    return_url = select_content(platform, entry="activity_form")
    answer = requests.post(return_url, data={"JWT": signed(dl_response(platform))})
    assert answer.status_code == 200 and "save the activity form" in answer.text
    assert platform.created_activities == [] and len(platform.pending_activity_forms) == 1
    link = platform.save_activity_form()
    assert link.title == "Harness deep-linked activity" and link.custom == {"dl_resource": "quiz-42"}


def test_the_activity_form_request_has_moodles_title_and_empty_text(platform):
    claims = launch_claims(platform, message_type=DEEP_LINKING_REQUEST, entry="activity_form")
    captured = fixture("id_token_teacher_deeplink_from_activity_form.json")["payload"]
    assert key_shape(claims) == key_shape(captured)
    settings, moodle = claims[CLAIM_DL_SETTINGS], captured[CLAIM_DL_SETTINGS]
    assert (settings["title"], settings["text"]) == (moodle["title"], moodle["text"])


@pytest.mark.parametrize("accept_grades, graded", [("never", False), ("delegate", True), ("always", True)])
def test_the_line_item_counts_as_the_administrator_accepts_grades(platform, accept_grades, graded):
    platform.accept_grades = accept_grades
    answer = requests.post(select_content(platform), data={"JWT": signed(dl_response(platform))})
    assert answer.status_code == 200
    (link,) = platform.created_activities
    assert any(i.resource_link_id == link.id for i in platform.line_items.values()) is graded


def test_deep_linking_data_must_come_back_as_it_was_sent(platform):
    return_url = select_content(platform, deep_linking={"data": "opaque-42"})
    refused = requests.post(return_url, data={"JWT": signed(dl_response(platform))})
    assert refused.status_code == 400 and "data" in refused.text
    echoed = dl_response(platform, **{CLAIM_DL_DATA: "opaque-42"})
    assert requests.post(return_url, data={"JWT": signed(echoed)}).status_code == 200


@pytest.mark.parametrize("change", [
    {"aud": ["https://elsewhere.example"]},
    {"iss": "someone-else"},
    {"nonce": None},
    {"exp": int(time.time()) - 60},
    {"https://purl.imsglobal.org/spec/lti/claim/deployment_id": "2"},
    {"https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiResourceLinkRequest"},
    {CLAIM_DL_DATA: "never-sent"},
    {CLAIM_DL_CONTENT_ITEMS: [{"type": "ltiResourceLink", "custom": {"weeks": 3}}]},
    {CLAIM_DL_CONTENT_ITEMS: [{"type": "ltiResourceLink", "lineItem": {"label": "x"}}]},
    {CLAIM_DL_CONTENT_ITEMS: [{"type": "ltiResourceLink", "url": "https://evil.example/lti/launch"}]},
    {CLAIM_DL_CONTENT_ITEMS: [{"type": "file"}]},
], ids=["aud", "iss", "no-nonce", "expired", "deployment", "message-type", "data-never-sent", "custom-number",
        "line-item-without-maximum", "foreign-url", "type-not-accepted"])
def test_deep_linking_responses_moodle_or_the_specification_refuse(platform, change):
    return_url = select_content(platform)
    answer = requests.post(return_url, data={"JWT": signed(dl_response(platform, **change))})
    assert answer.status_code == 400, answer.text
    assert platform.created_activities == [] and platform.deep_link_responses == []


def test_a_deep_linking_response_is_accepted_once_and_only_with_the_teachers_sesskey(platform):
    return_url = select_content(platform)
    select_content(platform)  # a second open selection, which a replay could otherwise answer
    response = signed(dl_response(platform))
    wrong_sesskey = return_url.replace(platform.sesskey, "stolen0000")
    assert requests.post(wrong_sesskey, data={"JWT": response}).status_code == 403
    assert requests.post(return_url, data={"JWT": response}).status_code == 200
    replayed = requests.post(return_url, data={"JWT": response})
    assert replayed.status_code == 400 and "replayed" in replayed.text
    assert len(platform.created_activities) == 1


# --------------------------------------------------------------------------- grade sync only
def test_grade_sync_only_grants_no_line_item_scope_in_launches_or_tokens(platform):
    platform.grade_sync_only()
    claims = launch_claims(platform)
    assert SCOPE_LINEITEM not in claims[CLAIM_AGS]["scope"] and SCOPE_SCORE in claims[CLAIM_AGS]["scope"]
    assert claims[CLAIM_AGS]["lineitem"] and claims[CLAIM_AGS]["lineitems"]
    answer = request_token(platform, [SCOPE_LINEITEM, SCOPE_SCORE])
    assert answer.json()["scope"] == SCOPE_SCORE
    assert request_token(platform, [SCOPE_LINEITEM]).json()["error"] == "invalid_scope"
    assert set(GRADE_SYNC_ONLY_SCOPES) - {SCOPE_NRPS} == set(claims[CLAIM_AGS]["scope"])


def test_without_grade_services_a_launch_has_no_ags_claim(platform):
    platform.permitted_scopes = [SCOPE_NRPS]
    assert CLAIM_AGS not in launch_claims(platform)


# --------------------------------------------------------------------------- submission review
def test_submission_review_is_offered_only_for_a_line_item_with_a_submission_review(platform):
    with pytest.raises(ValueError):
        platform.login_initiation(message_type=SUBMISSION_REVIEW_REQUEST, for_user="student")
    platform.line_items["2"].submission_review = {}
    claims = launch_claims(platform, message_type=SUBMISSION_REVIEW_REQUEST, for_user="student")
    assert claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] == SUBMISSION_REVIEW_REQUEST
    assert claims[CLAIM_FOR_USER] == {"user_id": "4"} and claims["sub"] == "3"
    assert claims["https://purl.imsglobal.org/spec/lti/claim/resource_link"]["id"] == "1"


def test_requests_are_logged(platform):
    requests.get(platform.key_set_url, headers={"X-Probe": "1"})
    request_token(platform)
    methods_paths = [(entry["method"], entry["path"]) for entry in platform.requests_log]
    assert methods_paths == [("GET", "/mod/lti/certs.php"), ("POST", "/mod/lti/token.php")]
    assert platform.requests_log[0]["headers"]["X-Probe"] == "1"
    assert "client_assertion=" in platform.requests_log[1]["body"]


def test_query_of_reads_a_redirect_location():
    assert query_of("http://x/auth.php?a=1&b=") == {"a": "1", "b": ""}


# --------------------------------------------------------------------------- dynamic registration
def registration_post(lms: FakePlatform, token: str | None, body: dict) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(lms.registration_desk.registration_endpoint(), json=body, headers=headers, timeout=10)


def test_moodle_registration_token_has_the_captured_shape(platform):
    params = platform.start_registration()
    captured = fixture("dynamic_registration_initiation.json")["args"]
    assert set(params) == set(captured) and params["openid_configuration"] == platform.openid_configuration_url
    claims = jwt.decode(params["registration_token"], options={"verify_signature": False})
    captured_claims = jwt.decode(captured["registration_token"], options={"verify_signature": False})
    assert list(claims) == list(captured_claims)
    assert claims["scope"] == "reg" and claims["exp"] - claims["iat"] == 3600 and len(claims["sub"]) == 15
    header = jwt.get_unverified_header(params["registration_token"])
    assert set(header) == set(jwt.get_unverified_header(captured["registration_token"]))
    assert header["kid"] == platform.signing_key.kid


def test_moodle_answers_a_registration_as_captured_and_refuses_its_token_twice(platform):
    captured = fixture("dynamic_registration_post.json")
    token = platform.start_registration()["registration_token"]
    answer = registration_post(platform, token, captured["request"]["body"])
    assert answer.status_code == 200, answer.text
    assert key_shape(answer.json()) == key_shape(captured["response"]["body"])
    assert sorted(answer.json()["scope"].split()) == sorted(captured["response"]["body"]["scope"].split())
    assert answer.json()["https://purl.imsglobal.org/spec/lti-tool-configuration"]["deployment_id"] == "2"
    again = registration_post(platform, token, captured["request"]["body"])
    assert (again.status_code, again.text) == (401, "token_already_used")


@pytest.mark.parametrize("change, refusal", [
    ({"client_name": None}, (400, "missing required attribute client_name")),
    ({"token_endpoint_auth_method": "client_secret_basic"}, (400, "invalid_token_endpoint_auth_method")),
    ({"application_type": "native"}, (400, "invalid_application_type")),
    ({"domain": "elsewhere.example"}, (400, "domain_targetlinkuri_mismatch")),
])
def test_moodle_refuses_a_registration_it_cannot_use(platform, change, refusal):
    body = json.loads(json.dumps(fixture("dynamic_registration_post.json")["request"]["body"]))
    tool = body["https://purl.imsglobal.org/spec/lti-tool-configuration"]
    for name, value in change.items():
        target = tool if name == "domain" else body
        if value is None:
            del target[name]
        else:
            target[name] = value
    answer = registration_post(platform, platform.start_registration()["registration_token"], body)
    assert (answer.status_code, answer.text) == refusal
    assert platform.registration_desk.tools == {}


def test_moodle_refuses_a_registration_without_a_token(platform):
    answer = registration_post(platform, None, fixture("dynamic_registration_post.json")["request"]["body"])
    assert (answer.status_code, answer.text) == (401, "missing_registration_token")


@pytest.mark.parametrize("change, complaint", [
    ({"scope": "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting"}, "Invalid scopes"),
    ({"messages": [{"type": "LtiSubmissionReviewRequest"}]}, "LtiSubmissionReviewRequest"),
    ({"messages": [{"type": "LtiDeepLinkingRequest", "placements": ["ContentItemSelection"]}]}, "ContentItemSelection"),
    ({"domain": "https://tool.example"}, "no scheme"),
    ({"claims": None}, "claims is missing"),
    ({"client_name": None}, "client_name"),
])
def test_canvas_answers_422_to_what_it_does_not_know(change, complaint):
    with FakePlatform(tool_base_url="http://127.0.0.1:5000", signing_key=PLATFORM_KEY, product="canvas") as canvas:
        body = json.loads(json.dumps(fixture("dynamic_registration_post.json")["request"]["body"]))
        tool = body["https://purl.imsglobal.org/spec/lti-tool-configuration"]
        for name, value in change.items():
            target = body if name in ("scope", "client_name") else tool
            if value is None:
                del target[name]
            else:
                target[name] = value
        token = canvas.start_registration()["registration_token"]
        refused = registration_post(canvas, token, body)
        assert refused.status_code == 422 and complaint in refused.text
        fine = registration_post(canvas, token, fixture("dynamic_registration_post.json")["request"]["body"])
        assert fine.status_code == 200, fine.text
        assert "deployment_id" not in fine.json()["https://purl.imsglobal.org/spec/lti-tool-configuration"]
        assert registration_post(canvas, token, fixture("dynamic_registration_post.json")["request"]["body"]
                                 ).status_code == 422, "a token registers once"


def test_brightspace_has_no_token_and_refuses_an_authorization_header():
    with FakePlatform(tool_base_url="http://127.0.0.1:5000", signing_key=PLATFORM_KEY,
                      product="brightspace") as brightspace:
        params = brightspace.start_registration()
        assert list(params) == ["openid_configuration"]
        configuration = requests.get(params["openid_configuration"], timeout=10).json()
        assert configuration["authorization_server"] == brightspace.token_audience
        body = fixture("dynamic_registration_post.json")["request"]["body"]
        with_header = requests.post(configuration["registration_endpoint"], json=body, timeout=10,
                                    headers={"Authorization": "Bearer None"})
        assert with_header.status_code == 401
        answer = requests.post(configuration["registration_endpoint"], json=body, timeout=10)
        assert answer.status_code == 201 and answer.json()["client_id"]
        assert requests.post(configuration["registration_endpoint"], json=body, timeout=10).status_code == 404
