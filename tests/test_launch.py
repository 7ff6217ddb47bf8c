"""OIDC login and id_token launch: the happy path and every rejection.

Every refused launch must answer 4xx with a page a person can read, log its reason, and write
nothing: no user, course, link, room, enrolment or used nonce, and the login's state unspent.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tests.conftest import row_counts
from tests.support import LTI, RECORDS, LaunchAttempt, claims_of  # noqa: F401


@pytest.fixture
def attempt(app, lms):
    return LaunchAttempt(app, lms)


# --- the happy path ---------------------------------------------------------------------------
def test_teacher_launch_redirects_once_to_room_page_with_join_control(lms):
    teacher = lms.launch("teacher")
    assert teacher.launch_response.status_code == 303
    page = teacher.page()
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="join"' in html and "Start class" in html
    assert "Terry Teacher" in html and "LTI Live Activity" in html


def test_student_launch_before_class_shows_waiting_page_without_join(lms):
    student = lms.launch("student")
    html = student.page().get_data(as_text=True)
    assert 'id="join"' not in html
    assert "has not started yet" in html and 'http-equiv="refresh"' in html


def test_launch_records_user_course_link_room_and_enrolment(app, lms):
    lms.launch("teacher")
    counts = row_counts(app)
    assert {t: counts[t] for t in RECORDS} == {
        "users": 1, "courses": 1, "resource_links": 1, "rooms": 1, "enrolments": 1, "used_nonces": 1,
    }
    assert counts["login_states"] == 0


def test_a_returning_launch_records_its_time_and_a_changed_role(app, lms):
    """A repeat launch writes its time (the usual case: nothing else changed), and a role the
    platform now says replaces the stored one."""
    from lti_tool.extensions import db
    from lti_tool.models import Enrolment

    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    lms.launch("student")
    with app.app_context():
        db.session.execute(sa.update(Enrolment).values(last_launch_at=long_ago))
        db.session.commit()
    lms.launch("student")
    with app.app_context():
        enrolment = db.session.scalars(sa.select(Enrolment)).one()
        assert enrolment.last_launch_at > long_ago and enrolment.role == "attendee"
        db.session.execute(sa.update(Enrolment).values(role="moderator", last_launch_at=long_ago))
        db.session.commit()
    lms.launch("student")
    with app.app_context():
        enrolment = db.session.scalars(sa.select(Enrolment)).one()
        assert enrolment.last_launch_at > long_ago and enrolment.role == "attendee"


def test_state_cookie_is_deleted_after_launch(lms):
    teacher = lms.launch("teacher")
    cookies = teacher.launch_response.headers.getlist("Set-Cookie")
    assert any(c.startswith("lti_state_") and "Max-Age=0" in c for c in cookies)


def test_login_accepts_get_and_post(app, platform):
    fields = platform.login_initiation(user="student")
    for send in (app.test_client().get, app.test_client().post):
        kwargs = {"query_string": fields} if send.__name__ == "get" else {"data": fields}
        answer = send("/lti/login", **kwargs)
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith(platform.auth_login_url + "?")


def test_login_redirect_carries_oidc_parameters_and_binds_state_to_browser(app, platform):
    fields = platform.login_initiation(user="student")
    answer = app.test_client().post("/lti/login", data=fields)
    from urllib.parse import parse_qs, urlsplit

    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    assert query["scope"] == "openid" and query["response_type"] == "id_token"
    assert query["response_mode"] == "form_post" and query["prompt"] == "none"
    assert query["client_id"] == platform.client_id and query["login_hint"] == fields["login_hint"]
    assert query["redirect_uri"] == "http://localhost/lti/launch"
    assert query["lti_message_hint"] == fields["lti_message_hint"]
    assert query["state"] and query["nonce"] and query["state"] != query["nonce"]
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"lti_state_{query['state']}=") and "HttpOnly" in cookie and "Path=/lti/" in cookie


@pytest.mark.parametrize("app_overrides", [{"TOOL_BASE_URL": "https://tool.example.edu"}])
def test_over_https_state_cookie_works_in_iframes(app, platform):
    fields = platform.login_initiation(user="student", target_link_uri="https://tool.example.edu/lti/launch")
    cookie = app.test_client().post("/lti/login", data=fields).headers["Set-Cookie"]
    assert "Secure" in cookie and "SameSite=None" in cookie and "Partitioned" in cookie


# --- login refusals ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, status",
    [
        ({"iss": "https://unknown.example.com"}, 403),
        ({"client_id": "someone-else"}, 403),
        ({"lti_deployment_id": "99"}, 403),
        ({"iss": None}, 400),
        ({"login_hint": None}, 400),
        ({"target_link_uri": "https://evil.example.com/lti/launch"}, 400),
    ],
    ids=["unknown-issuer", "unknown-client", "unknown-deployment", "no-iss", "no-login-hint", "foreign-target"],
)
def test_login_refusals_are_readable_and_write_nothing(app, platform, change, status):
    fields = {**platform.login_initiation(user="student"), **change}
    fields = {k: v for k, v in fields.items() if v is not None}
    before = row_counts(app)
    answer = app.test_client().post("/lti/login", data=fields)
    assert answer.status_code == status
    assert "<h1" in answer.get_data(as_text=True) and "Set-Cookie" not in answer.headers
    assert row_counts(app) == before


# --- launch refusals --------------------------------------------------------------------------
def test_tampered_payload_fails_signature(attempt):
    header, payload, signature = attempt.form["id_token"].split(".")
    other = attempt.resign(claims={"sub": "2"}).split(".")[1]
    attempt.assert_refused(attempt.post(id_token=f"{header}.{other}.{signature}"), 401)


def test_token_signed_by_unknown_key_refused(attempt, platform):
    forged = platform.token_signed_by_unknown_key(claims={"nonce": attempt.claims["nonce"]})
    attempt.assert_refused(attempt.post(id_token=forged), 401)


def test_token_signed_by_other_key_with_real_kid_refused(attempt, platform):
    forged = platform.token_signed_by_unknown_key(reuse_kid=True, claims={"nonce": attempt.claims["nonce"]})
    attempt.assert_refused(attempt.post(id_token=forged), 401)


def test_alg_none_refused(attempt, platform):
    forged = platform.token_alg_none(claims={"nonce": attempt.claims["nonce"]})
    attempt.assert_refused(attempt.post(id_token=forged), 401)


def test_hs256_signed_with_public_key_refused(attempt, platform):
    forged = platform.token_hs256_with_public_key(claims={"nonce": attempt.claims["nonce"]})
    attempt.assert_refused(attempt.post(id_token=forged), 401)


def test_expired_token_refused(attempt):
    attempt.assert_refused(
        attempt.post(id_token=attempt.resign(claims={"iat": 1_700_000_000, "exp": 1_700_000_060})),
        401,
        "expired",
    )


def test_token_issued_in_the_future_refused(attempt):
    import time

    later = int(time.time()) + 3600
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"iat": later, "exp": later + 60})), 401)


def test_wrong_audience_refused(attempt):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"aud": "another-tool"})), 403)


def test_several_audiences_without_azp_refused(attempt, platform):
    token = attempt.resign(claims={"aud": [platform.client_id, "another-tool"]})
    attempt.assert_refused(attempt.post(id_token=token), 401)


def test_azp_naming_another_client_refused(attempt, platform):
    token = attempt.resign(claims={"aud": [platform.client_id, "another-tool"], "azp": "another-tool"})
    attempt.assert_refused(attempt.post(id_token=token), 403)


def test_wrong_issuer_refused(attempt):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"iss": "https://evil.example.com"})), 403)


def test_replayed_nonce_refused(app, lms, attempt):
    """An id_token already used once, replayed with a fresh login of the same browser."""
    used = LaunchAttempt(app, lms)
    assert used.post().status_code == 303
    attempt.before = row_counts(app)
    replay = attempt.resign(claims={"nonce": used.claims["nonce"]})
    attempt.assert_refused(attempt.post(id_token=replay), 403)


def test_same_launch_posted_twice_refused(app, attempt):
    assert attempt.post().status_code == 303
    attempt.before = row_counts(app)
    second = attempt.post()
    assert second.status_code == 403
    assert row_counts(app) == attempt.before


def test_missing_state_refused(attempt):
    attempt.assert_refused(attempt.post(state=""), 403)


def test_unknown_state_refused(attempt):
    attempt.assert_refused(attempt.post(state="not-a-state-we-issued"), 403)


def test_state_from_another_browser_refused(app, lms, attempt):
    """The state is real, but this browser never started that login (login CSRF): framed, it is
    refused at once; in a window, the tool's re-submission comes without that state's cookie
    too (this browser holds only its own login's) and is refused."""
    other = LaunchAttempt(app, lms, as_="student")
    attempt.before = row_counts(app)
    stolen = {"id_token": other.form["id_token"], "state": other.form["state"]}
    framed = attempt.post(**stolen, headers={"Sec-Fetch-Dest": "iframe"})
    attempt.assert_refused(framed, 403)
    page = attempt.post(**stolen, headers={"Sec-Fetch-Dest": "document"})
    assert page.status_code == 200 and 'name="lti_resubmitted"' in page.get_data(as_text=True)
    attempt.assert_refused(attempt.post(**stolen, lti_resubmitted="1", headers={"Sec-Fetch-Dest": "document"}), 403)


def test_missing_state_cookie_offers_moodles_own_launch_in_a_new_window(app, lms, attempt, platform):
    """Moodle's hint is single-use, but names the course module: Moodle's launch page for it
    starts a fresh launch in a first-party window."""
    attempt.client.delete_cookie(f"lti_state_{attempt.form['state']}", path="/lti/")
    response = attempt.post(headers={"Sec-Fetch-Dest": "iframe"})
    attempt.assert_refused(response, 403, "blocked the cookie")
    html = response.get_data(as_text=True)
    assert 'id="open-new-window"' in html and 'target="_blank"' in html
    cmid = platform.resource_links["1"].cmid
    assert f'href="{platform.issuer}/mod/lti/launch.php?id={cmid}"' in html


def test_missing_state_cookie_on_other_platforms_restarts_the_login(app, platform):
    """A platform whose hint is not Moodle's (reusable hints: Canvas, D2L) gets the login
    again, with the original parameters."""
    client = app.test_client()
    fields = {**platform.login_initiation(user="student"), "lti_message_hint": "opaque-reusable-hint"}
    answer = client.post("/lti/login", data=fields)
    from urllib.parse import parse_qs, urlsplit

    state = parse_qs(urlsplit(answer.headers["Location"]).query)["state"][0]
    client.delete_cookie(f"lti_state_{state}", path="/lti/")
    nonce = parse_qs(urlsplit(answer.headers["Location"]).query)["nonce"][0]
    token = platform.make_id_token(user="student", nonce=nonce)
    response = client.post("/lti/launch", data={"id_token": token, "state": state},
                           headers={"Sec-Fetch-Dest": "iframe"})
    html = response.get_data(as_text=True)
    assert response.status_code == 403 and "/lti/login?" in html and "lti_message_hint=opaque-reusable-hint" in html


# --- launches without the state cookie (plain http across sites: the Contract) ---------------
def without_cookie(app):
    """Another test client: the same browser as a cross-site POST sees it (no Lax cookie)."""
    return app.test_client()


@pytest.mark.parametrize("dest", ["document", None], ids=["window", "no-sec-fetch-dest"])
def test_a_launch_without_cookie_in_a_window_is_posted_again_by_the_tool_and_completes(app, attempt, dest):
    headers = {"Sec-Fetch-Dest": dest} if dest else {}
    page = attempt.post(client=without_cookie(app), headers=headers)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="resubmit-launch"' in html and 'action="/lti/launch"' in html
    assert f'name="state" value="{attempt.form["state"]}"' in html and 'name="lti_resubmitted" value="1"' in html
    assert f'name="id_token" value="{attempt.form["id_token"]}"' in html
    assert row_counts(app) == attempt.before, "nothing written, the state unspent"
    # The page's own POST is same-site: this time the browser sends the cookie.
    done = attempt.post(lti_resubmitted="1", headers={"Sec-Fetch-Dest": "document"})
    assert done.status_code == 303 and "/rooms/" in done.headers["Location"]


def test_a_resubmitted_launch_still_without_cookie_is_refused_with_advice_for_a_window(app, attempt):
    response = attempt.post(client=without_cookie(app), lti_resubmitted="1",
                            headers={"Sec-Fetch-Dest": "document"})
    attempt.assert_refused(response, 403, "did not keep this tool's cookie")
    html = response.get_data(as_text=True)
    assert '<div id="cookie-framed" hidden>' in html and '<div id="cookie-window">' in html
    assert "http://localhost" in html and "https" in html
    assert "window.self !== window.top" in html  # the page checks for itself, too


def test_a_framed_launch_without_cookie_is_refused_at_once_with_the_new_window_button(app, attempt):
    response = attempt.post(client=without_cookie(app), headers={"Sec-Fetch-Dest": "iframe"})
    attempt.assert_refused(response, 403, "blocked the cookie")
    html = response.get_data(as_text=True)
    assert 'id="open-new-window"' in html and '<div id="cookie-window" hidden>' in html
    assert "resubmit-launch" not in html


def test_a_resubmission_with_a_wrong_cookie_is_refused(app, attempt):
    """The marker only says "the tool posted this"; the cookie is checked as ever."""
    attempt.client.set_cookie(f"lti_state_{attempt.form['state']}", "someone-elses-binding", path="/lti/")
    attempt.assert_refused(attempt.post(lti_resubmitted="1"), 403)


def test_launch_pages_have_no_inline_event_handlers():
    """A Content-Security-Policy with script nonces is coming: scripts live in <script> tags."""
    import re
    from pathlib import Path

    templates = Path(__file__).resolve().parent.parent / "templates"
    for path in [*(templates / "lti").glob("*.html"), templates / "errors" / "launch.html"]:
        assert not re.search(r"\son[a-z]+\s*=", path.read_text()), path.name


def test_a_deeply_nested_message_hint_still_gets_the_refusal_page(app, platform):
    """The refusal page reads Moodle's hint (JSON) for the new-window link: 4,000 nested
    brackets (under the 4 KB cap) must not make it a 500."""
    from urllib.parse import parse_qs, urlsplit

    client = app.test_client()
    fields = {**platform.login_initiation(user="student"), "lti_message_hint": "[" * 4000}
    query = parse_qs(urlsplit(client.post("/lti/login", data=fields).headers["Location"]).query)
    token = platform.make_id_token(user="student", nonce=query["nonce"][0])
    response = app.test_client().post("/lti/launch", data={"id_token": token, "state": query["state"][0]},
                                      headers={"Sec-Fetch-Dest": "iframe"})
    assert response.status_code == 403 and 'id="open-new-window"' in response.get_data(as_text=True)


def test_nonce_not_issued_for_this_state_refused(attempt):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"nonce": "made-up"})), 403)


@pytest.mark.parametrize(
    "claims, status",
    [
        ({LTI + "deployment_id": None}, 400),
        ({LTI + "deployment_id": "99"}, 403),
        ({LTI + "version": "1.1"}, 400),
        ({LTI + "version": None}, 400),
        ({LTI + "message_type": "LtiStrangeRequest"}, 400),
        ({LTI + "roles": None}, 400),
        ({"sub": None}, 400),
        ({LTI + "resource_link": None}, 400),
        ({"nonce": None}, 401),
        ({"exp": None}, 401),
    ],
    ids=[
        "no-deployment", "unknown-deployment", "wrong-version", "no-version", "unknown-message-type",
        "no-roles", "no-sub", "no-resource-link", "no-nonce", "no-exp",
    ],
)
def test_claim_refusals(attempt, claims, status):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims=claims)), status)


@pytest.mark.parametrize(
    "target",
    [None, "", "https://evil.example.com/lti/launch", "http://localhost.evil.example.com/lti/launch",
     "https://localhost/lti/launch", "http://[::1", 7, ["http://localhost/lti/launch"]],
    ids=["missing", "empty", "other-site", "lookalike-host", "other-scheme", "malformed", "number", "list"],
)
def test_target_link_uri_must_be_on_this_tool(attempt, target):
    """The login checked the target_link_uri it was given; the signed one counts too."""
    token = attempt.resign(claims={LTI + "target_link_uri": target})  # None: the claim is left out
    attempt.assert_refused(attempt.post(id_token=token), 400)


def test_target_link_uri_anywhere_on_this_tool_is_accepted(attempt):
    token = attempt.resign(claims={LTI + "target_link_uri": "http://localhost/lti/launch?activity=7"})
    assert attempt.post(id_token=token).status_code == 303


def test_missing_id_token_refused(attempt):
    attempt.assert_refused(attempt.client.post("/lti/launch", data={"state": attempt.form["state"]}), 400)


def test_garbage_id_token_refused(attempt):
    attempt.assert_refused(attempt.post(id_token="not.a.jwt"), 400)


def test_platform_error_response_is_shown_readably(attempt):
    response = attempt.client.post(
        "/lti/launch",
        data={"error": "login_required", "error_description": "Session expired", "state": attempt.form["state"]},
    )
    attempt.assert_refused(response, 400, "could not complete the launch")


def test_empty_roles_claim_is_an_attendee(app, attempt):
    response = attempt.post(id_token=attempt.resign(claims={LTI + "roles": []}))
    assert response.status_code == 303


def test_deep_linking_request_answers_the_set_up_form_and_spends_the_login(app, lms):
    client = app.test_client()
    form = lms.start_login(client, as_="teacher", message_type="LtiDeepLinkingRequest")
    before = row_counts(app)
    response = client.post("/lti/launch", data=form)
    assert response.status_code == 200 and 'id="deep-link-form"' in response.get_data(as_text=True)
    after = row_counts(app)
    assert after["login_states"] == before["login_states"] - 1 and after["used_nonces"] == before["used_nonces"] + 1
    assert after["deep_link_requests"] == 1
    assert {t: after[t] for t in RECORDS if t != "used_nonces"} == {t: before[t] for t in RECORDS if t != "used_nonces"}
    assert client.post("/lti/launch", data=form).status_code == 403, "the same request cannot open a second form"


# --- platform keys ----------------------------------------------------------------------------
def test_platform_jwks_is_cached_between_launches(lms, platform):
    lms.launch("teacher")
    lms.launch("student")
    assert platform.jwks_requests == 1


def test_unknown_kid_after_platform_rotation_refetches_jwks_once(app, lms, platform, monkeypatch):
    lms.launch("teacher")
    assert platform.jwks_requests == 1
    platform.rotate_key()
    # The cache refuses to refetch more often than every 10 s; let that time pass.
    from lti_tool.lti import platform_keys

    monkeypatch.setattr(platform_keys, "MIN_REFETCH_SECONDS", 0.0)
    lms.launch("student")
    assert platform.jwks_requests == 2


def test_forged_kids_do_not_make_the_tool_hammer_the_platform(attempt, platform):
    for _ in range(5):
        forged = platform.token_signed_by_unknown_key(claims={"nonce": attempt.claims["nonce"]})
        assert attempt.post(id_token=forged).status_code == 401
    assert platform.jwks_requests <= 2


def test_jwks_unreachable_refuses_launch(attempt, platform):
    """Not the person's fault, nor a forgery: 503, try again (tests/test_platform_keys.py)."""
    platform.fail_next(3, status=500, endpoint="jwks")
    attempt.assert_refused(attempt.post(), 503, "try again")


# --- LTI platform storage (platforms that send lti_storage_target) ----------------------------
def storage_login(app, platform, client):
    import re

    fields = {**platform.login_initiation(user="student"), "lti_storage_target": "post_message_forwarding"}
    page = client.post("/lti/login", data=fields)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "lti.put_data" in html
    key = re.search(r'\.put\("(lti_state_[^"]+)", "([^"]+)"\)', html)
    redirect_url = re.search(r'var next = "([^"]+)"', html).group(1).replace("\\u0026", "&")
    return key.group(1), key.group(2), platform.authorize(redirect_url)


def test_storage_login_puts_binding_in_platform_storage_and_sets_cookie_too(app, platform):
    client = app.test_client()
    fields = {**platform.login_initiation(user="student"), "lti_storage_target": "_parent"}
    page = client.post("/lti/login", data=fields)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '"_parent"' in html and f'"{platform.issuer}"' in html  # only the platform's origin
    assert page.headers["Set-Cookie"].startswith("lti_state_")


def test_launch_without_cookie_reads_binding_back_from_platform_storage(app, platform):
    client = app.test_client()
    key, binding, form = storage_login(app, platform, client)
    client.delete_cookie(key, path="/lti/")
    before = row_counts(app)
    ask = client.post("/lti/launch", data={"id_token": form["id_token"], "state": form["state"]})
    html = ask.get_data(as_text=True)
    assert ask.status_code == 200 and "lti.get_data" in html and key in html
    assert row_counts(app) == before
    done = client.post(
        "/lti/launch", data={"id_token": form["id_token"], "state": form["state"], "lti_storage_binding": binding}
    )
    assert done.status_code == 303


def test_platform_storage_binding_must_match(app, platform):
    client = app.test_client()
    key, _, form = storage_login(app, platform, client)
    client.delete_cookie(key, path="/lti/")
    before = row_counts(app)
    for wrong in ("", "someone-elses-binding"):
        refused = client.post(
            "/lti/launch", data={"id_token": form["id_token"], "state": form["state"], "lti_storage_binding": wrong}
        )
        assert refused.status_code == 403
    assert row_counts(app) == before


def test_new_window_relaunch_leaves_platform_storage_out(app):
    from lti_tool.lti.routes import relaunch_url

    with app.test_request_context():
        url = relaunch_url(
            {"iss": "https://canvas.example.edu", "login_hint": "4", "lti_message_hint": "opaque",
             "lti_storage_target": "_parent", "target_link_uri": "http://localhost/lti/launch"}
        )
    assert url.startswith("/lti/login?") and "lti_storage_target" not in url and "login_hint=4" in url


def test_moodle_relaunch_uses_only_an_integer_cmid_and_the_registered_issuer(app):
    from lti_tool.lti.routes import relaunch_url

    with app.test_request_context():
        forged = relaunch_url({"iss": "https://moodle.example.edu", "lti_message_hint": '{"cmid": "2/../../evil"}'})
        real = relaunch_url({"iss": "https://moodle.example.edu/", "lti_message_hint": '{"cmid": 7, "launchid": "x"}'})
    assert forged.startswith("/lti/login?")
    assert real == "https://moodle.example.edu/mod/lti/launch.php?id=7"
