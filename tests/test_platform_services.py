"""Platform services (access tokens, AGS scores and line items, NRPS) against the fake Moodle
over real HTTP, with the token cache in the test database."""
from __future__ import annotations

import logging
import threading
import time
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import jwt
import pytest
from sqlalchemy import select, update

import tests.fakes.lti_platform as fake_platform
from lti_tool.extensions import db
from lti_tool.lti import platform_services
from lti_tool.lti.platform_services import (
    MEDIA_LINEITEM,
    MEDIA_LINEITEM_CONTAINER,
    MEDIA_MEMBERSHIP_CONTAINER,
    MEDIA_SCORE,
    SCOPE_LINEITEM,
    SCOPE_NRPS,
    SCOPE_SCORE,
    PlatformServiceError,
    PlatformServices,
    RosterEntry,
    retry_after_seconds,
    scores_url,
)
from lti_tool.models import PlatformToken

BASE_TIME = datetime(2026, 11, 21, 22, 31, 3, tzinfo=UTC)


@pytest.fixture
def context(app):
    with app.app_context():
        yield


@pytest.fixture
def registration(app, platform, context):
    return app.extensions["registrations"].find(platform.issuer, platform.client_id)


@pytest.fixture
def services(app, context):
    return PlatformServices.from_app(app, timeout=5)


def score(user_id="4", given=80.0, at=BASE_TIME, comment="attended 48 of 60 minutes") -> dict:
    return {
        "userId": user_id,
        "scoreGiven": given,
        "scoreMaximum": 100.0,
        "timestamp": at.isoformat(),
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "comment": comment,
    }


Cached = namedtuple("Cached", "scopes access_token expires_at")


def cached_tokens() -> list[Cached]:
    """The shared tokens, unsealed (key rows that hold no token are left out)."""
    rows = db.session.execute(
        select(PlatformToken.scopes, PlatformToken.sealed_token, PlatformToken.expires_at)
    ).all()
    db.session.rollback()
    return [Cached(scopes, platform_services._unsealed(sealed), expires_at)
            for scopes, sealed, expires_at in rows if sealed]


def requests_to(platform, path_end: str, method: str | None = None) -> list[dict]:
    return [entry for entry in platform.requests_log
            if entry["path"].endswith(path_end) and method in (None, entry["method"])]


# --------------------------------------------------------------------------- access tokens
def test_client_assertion_is_accepted_and_token_cached_for_an_hour(app, platform, registration,
                                                                   services):
    token = services.access_token(registration, [SCOPE_SCORE])

    assert platform.token_requests == 1
    assert platform.issued_tokens[0]["access_token"] == token
    assert platform.issued_tokens[0]["scopes"] == [SCOPE_SCORE]
    [request] = requests_to(platform, "/mod/lti/token.php")
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = {name: values[0] for name, values in parse_qs(request["body"]).items()}
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["scope"] == SCOPE_SCORE
    header = jwt.get_unverified_header(form["client_assertion"])
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert header["alg"] == "RS256"
    assert header["kid"] == app.extensions["key_ring"].signing_key.kid
    assert claims["iss"] == claims["sub"] == platform.client_id
    assert claims["aud"] == platform.auth_token_url
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"]

    [(scopes, cached, expires_at)] = cached_tokens()
    assert (scopes, cached) == (SCOPE_SCORE, token)
    remaining = (expires_at - datetime.now(UTC)).total_seconds()
    assert 3590 < remaining <= 3600


def test_twenty_score_posts_cost_one_token_request(platform, registration, services):
    for second in range(20):
        outcome = services.post_score(registration, platform.lineitem_url(),
                                      score(at=BASE_TIME + timedelta(seconds=second)))
        assert outcome.kind == "delivered"

    assert platform.token_requests == 1
    assert len(platform.scores) == 20


def test_token_cache_is_shared_by_workers(app, platform, registration, services):
    assert services.post_score(registration, platform.lineitem_url(), score("4")).kind == "delivered"
    outcomes = []

    def other_worker():
        with app.app_context():  # its own database session and HTTP session
            worker = PlatformServices.from_app(app)
            outcomes.append(worker.post_score(registration, platform.lineitem_url(), score("5")))

    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join(timeout=30)

    assert [outcome.kind for outcome in outcomes] == ["delivered"]
    assert platform.token_requests == 1
    assert set(platform.gradebook) == {"4", "5"}


def test_token_the_platform_expired_is_replaced_once(platform, registration, services):
    services.post_score(registration, platform.lineitem_url(), score(at=BASE_TIME))
    [(_, old_token, _)] = cached_tokens()
    platform.expire_access_tokens()  # the database row still looks valid for an hour

    outcome = services.post_score(registration, platform.lineitem_url(),
                                  score(given=90, at=BASE_TIME + timedelta(seconds=1)))

    assert outcome.kind == "delivered"
    assert platform.token_requests == 2
    assert [entry["headers"]["Authorization"] for entry in requests_to(platform, "/scores")] == [
        f"Bearer {old_token}", f"Bearer {old_token}",
        f"Bearer {platform.issued_tokens[1]['access_token']}",
    ]
    [(_, new_token, _)] = cached_tokens()
    assert new_token == platform.issued_tokens[1]["access_token"] != old_token
    assert platform.gradebook["4"]["grade"] == 90


def test_a_token_refused_twice_is_not_retried_again(platform, registration, services):
    platform.fail_next(2, status=401)

    outcome = services.post_score(registration, platform.lineitem_url(), score())

    assert (outcome.kind, outcome.status) == ("rejected", 401)
    assert platform.token_requests == 2
    assert len(requests_to(platform, "/scores")) == 2


def test_scopes_are_cached_separately(platform, registration, services):
    ags = services.access_token(registration, [SCOPE_SCORE, SCOPE_LINEITEM])
    nrps = services.access_token(registration, [SCOPE_NRPS])

    assert ags != nrps
    assert services.access_token(registration, [SCOPE_LINEITEM, SCOPE_SCORE]) == ags
    assert platform.token_requests == 2
    assert sorted(row.scopes for row in cached_tokens()) == [
        " ".join(sorted([SCOPE_LINEITEM, SCOPE_SCORE])), SCOPE_NRPS]


def test_token_expiring_within_a_minute_is_renewed(platform, registration, services):
    first = services.access_token(registration, [SCOPE_SCORE])
    db.session.execute(update(PlatformToken).values(
        expires_at=datetime.now(UTC) + timedelta(seconds=50)))
    db.session.commit()
    services._memory.clear()  # what this process remembers for a few seconds: as if they passed

    second = services.access_token(registration, [SCOPE_SCORE])

    assert second != first
    assert platform.token_requests == 2
    assert [row.access_token for row in cached_tokens()] == [second]


def test_refused_client_assertion_is_a_permanent_error(platform, registration, services):
    platform.tool_jwks = {"keys": []}  # the platform does not know the tool's key

    with pytest.raises(PlatformServiceError) as raised:
        services.access_token(registration, [SCOPE_SCORE])
    outcome = services.post_score(registration, platform.lineitem_url(), score())

    assert (raised.value.status, raised.value.retryable) == (400, False)
    assert "invalid_client" in raised.value.message
    assert (outcome.kind, outcome.status) == ("rejected", 400)
    assert "invalid_client" in outcome.message
    assert cached_tokens() == []


def test_token_endpoint_outage_makes_the_score_wait(platform, registration, services):
    platform.fail_next(1, status=503, retry_after=7, endpoint="token")

    outcome = services.post_score(registration, platform.lineitem_url(), score())

    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 503, 7)
    assert platform.scores == []


def test_logs_name_calls_but_never_tokens_or_assertions(platform, registration, services, caplog):
    caplog.set_level(logging.DEBUG)
    services.post_score(registration, platform.lineitem_url(), score())
    services.roster(registration, platform.memberships_url())

    assert "POST " + platform.scores_url() + " -> 200" in caplog.text
    assert "GET " + platform.memberships_url() + " -> 200" in caplog.text
    assert "POST " + platform.auth_token_url + " -> 200" in caplog.text
    secrets_sent = [token["access_token"] for token in platform.issued_tokens]
    secrets_sent += [parse_qs(entry["body"])["client_assertion"][0]
                     for entry in requests_to(platform, "/token.php")]
    assert len(secrets_sent) == 4
    for secret in secrets_sent:
        assert secret not in caplog.text
        assert secret[:20] not in caplog.text


# --------------------------------------------------------------------------- scores
def test_scores_url_keeps_moodles_type_id_after_the_path():
    assert scores_url("http://lms/mod/lti/services.php/2/lineitems/2/lineitem?type_id=1") == (
        "http://lms/mod/lti/services.php/2/lineitems/2/lineitem/scores?type_id=1")
    assert scores_url("https://lms/api/lineitems/7/") == "https://lms/api/lineitems/7/scores"


def test_score_is_delivered_to_the_gradebook(platform, registration, services):
    outcome = services.post_score(registration, platform.lineitem_url(), score(given=80))

    assert (outcome.kind, outcome.status) == ("delivered", 200)
    [request] = requests_to(platform, "/scores")
    assert request["path"] == "/mod/lti/services.php/2/lineitems/2/lineitem/scores"
    assert request["query"] == "type_id=1"
    assert request["headers"]["Content-Type"] == MEDIA_SCORE
    assert platform.scores[0]["userId"] == "4"
    assert platform.gradebook["4"]["grade"] == 80
    assert platform.gradebook["4"]["comment"] == "attended 48 of 60 minutes"


def test_score_not_later_to_the_second_is_a_conflict(platform, registration, services):
    services.post_score(registration, platform.lineitem_url(),
                        score(given=50, at=BASE_TIME.replace(microsecond=100000)))

    outcome = services.post_score(registration, platform.lineitem_url(),
                                  score(given=60, at=BASE_TIME.replace(microsecond=900000)))

    assert (outcome.kind, outcome.status) == ("conflict", 409)
    assert "earlier timestamp" in outcome.message
    assert platform.gradebook["4"]["grade"] == 50


@pytest.mark.parametrize("user", ["teacher", "admin"])
def test_score_for_a_user_the_platform_cannot_grade_is_rejected(platform, registration, services,
                                                                user):
    outcome = services.post_score(registration, platform.lineitem_url(),
                                  score(platform.user(user).sub))

    assert (outcome.kind, outcome.status) == ("rejected", 400)
    assert outcome.message == "Incorrect score received: user not gradable"
    assert outcome.retry_after is None


def test_unavailable_platform_asks_to_retry_after_its_delay(platform, registration, services):
    platform.fail_next(1, status=503, retry_after=30)

    outcome = services.post_score(registration, platform.lineitem_url(), score())

    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 503, 30)
    assert services.post_score(registration, platform.lineitem_url(), score()).kind == "delivered"


def test_rate_limited_score_is_retried_later(platform, registration, services):
    platform.fail_next(1, status=429, retry_after=5)

    outcome = services.post_score(registration, platform.lineitem_url(), score())

    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 429, 5)


def test_platform_down_means_retry(platform, registration, services):
    services.access_token(registration, [SCOPE_SCORE])
    platform.down = True

    outcome = services.post_score(registration, platform.lineitem_url(), score())

    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 503, None)


def test_slow_platform_times_out_and_means_retry(app, platform, registration, monkeypatch):
    services = PlatformServices.from_app(app, timeout=0.3)
    services.access_token(registration, [SCOPE_SCORE])
    answer_normally = platform._take_failure

    def slow(endpoint):
        if endpoint == "services":
            time.sleep(1)
        answer_normally(endpoint)

    monkeypatch.setattr(platform, "_take_failure", slow)
    started = time.monotonic()

    outcome = services.post_score(registration, platform.lineitem_url(), score())

    assert time.monotonic() - started < 0.9
    assert (outcome.kind, outcome.status) == ("retry", None)
    assert "Timeout" in outcome.message


def test_unreachable_platform_means_retry(platform, registration, services):
    url = platform.lineitem_url()
    services.access_token(registration, [SCOPE_SCORE])
    platform.stop()

    outcome = services.post_score(registration, url, score())

    assert (outcome.kind, outcome.status) == ("retry", None)
    assert "ConnectionError" in outcome.message


def test_retry_after_is_read_as_seconds_or_an_http_date():
    assert retry_after_seconds("120") == 120
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= retry_after_seconds(in_a_minute) <= 60
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# --------------------------------------------------------------------------- line items
def test_existing_line_item_of_the_resource_link_is_reused(platform, registration, services):
    url = services.find_or_create_lineitem(
        registration, platform.lineitems_url(), resource_link_id="1", label="Attendance",
        score_maximum=100)

    assert url == platform.lineitem_url("2")
    [request] = requests_to(platform, "/lineitems")
    assert request["method"] == "GET"
    assert request["headers"]["Accept"] == MEDIA_LINEITEM_CONTAINER
    assert parse_qs(request["query"]) == {"type_id": ["1"], "resource_link_id": ["1"]}


def test_line_item_is_created_when_none_matches(platform, registration, services):
    arguments = {"resource_link_id": "1", "resource_id": "room-7", "tag": "attendance",
                 "label": "Attendance: LTI Live Activity", "score_maximum": 10}

    created = services.find_or_create_lineitem(registration, platform.lineitems_url(), **arguments)
    again = services.find_or_create_lineitem(registration, platform.lineitems_url(), **arguments)

    assert created == again != platform.lineitem_url("2")
    [item] = [item for item in platform.line_items.values() if platform.lineitem_url(item.id) == created]
    assert (item.label, item.score_maximum, item.resource_link_id, item.resource_id, item.tag) == (
        "Attendance: LTI Live Activity", 10, "1", "room-7", "attendance")
    [post] = requests_to(platform, "/lineitems", "POST")
    assert post["headers"]["Content-Type"] == MEDIA_LINEITEM
    assert post["query"] == "type_id=1"


def test_line_items_are_searched_across_pages(platform, registration, services, monkeypatch):
    # A platform that ignores the filters: the tool must page and match items itself.
    monkeypatch.setattr(fake_platform, "_line_item_matches", lambda item, args: True)
    for number in range(4):
        platform.add_line_item(f"Other {number}", 10, resource_link_id="1", tag="quiz")
    wanted = platform.add_line_item("Attendance", 10, resource_link_id="1", tag="attendance")

    url = services.find_or_create_lineitem(
        registration, platform.lineitems_url(), resource_link_id="1", tag="attendance",
        label="Attendance", score_maximum=10, limit=2)

    assert url == platform.lineitem_url(wanted.id)
    gets = requests_to(platform, "/lineitems", "GET")
    assert len(gets) == 3  # six items, two a page
    assert parse_qs(gets[2]["query"])["from"] == ["4"]
    assert requests_to(platform, "/lineitems", "POST") == []


def test_line_item_creation_refused_is_an_error(platform, registration, services):
    with pytest.raises(PlatformServiceError) as raised:
        services.find_or_create_lineitem(registration, platform.lineitems_url(),
                                         resource_link_id="404", label="X", score_maximum=1)

    assert (raised.value.status, raised.value.retryable) == (403, False)
    assert "Invalid LTI id supplied." in raised.value.message


# --------------------------------------------------------------------------- roster
def test_roster_lists_every_member_including_those_who_never_launched(platform, registration,
                                                                      services):
    platform.add_user("late", "7", ["Learner"], "Lee", "Late", "late@example.com")

    members = services.roster(registration, platform.memberships_url())

    assert {member.sub: member.roles for member in members} == {
        "3": ["Instructor"], "4": ["Learner"], "5": ["Learner"], "6": ["Learner"], "7": ["Learner"]}
    assert RosterEntry("7", "Lee Late", "Lee", "Late", "late@example.com", ["Learner"],
                       "Active") in members
    [request] = requests_to(platform, "/memberships")
    assert request["headers"]["Accept"] == MEDIA_MEMBERSHIP_CONTAINER
    assert platform.issued_tokens[0]["scopes"] == [SCOPE_NRPS]


def test_roster_follows_next_links(platform, registration, services):
    platform.add_user("late", "7", ["Learner"], "Lee", "Late", "late@example.com")

    members = services.roster(registration, platform.memberships_url(), limit=2)

    assert sorted(member.sub for member in members) == ["3", "4", "5", "6", "7"]
    pages = requests_to(platform, "/memberships")
    assert [parse_qs(page["query"]).get("from") for page in pages] == [None, ["2"], ["4"]]
    assert platform.token_requests == 1


def test_roster_errors_say_whether_to_retry(platform, registration, services):
    platform.fail_next(1, status=503, retry_after=12)
    with pytest.raises(PlatformServiceError) as unavailable:
        services.roster(registration, platform.memberships_url())
    with pytest.raises(PlatformServiceError) as missing:
        services.roster(registration, platform.memberships_url("99"))

    assert (unavailable.value.status, unavailable.value.retryable) == (503, True)
    assert unavailable.value.retry_after == 12
    assert (missing.value.status, missing.value.retryable) == (404, False)
    assert "Course 99 doesn't exist" in missing.value.message


def test_roster_with_an_expired_token_fetches_a_new_one(platform, registration, services):
    services.roster(registration, platform.memberships_url())
    platform.expire_access_tokens()  # Moodle answers memberships with 403, not 401

    members = services.roster(registration, platform.memberships_url())

    assert len(members) == 4
    assert platform.token_requests == 2


def test_roster_of_an_unreachable_platform_is_retryable(platform, registration, services):
    url = platform.memberships_url()
    platform.stop()

    with pytest.raises(PlatformServiceError) as raised:
        services.roster(registration, url)

    assert (raised.value.status, raised.value.retryable) == (None, True)


def test_worker_that_looked_before_another_stored_a_token_reuses_it(app, platform, registration,
                                                                     services, monkeypatch):
    first = services.access_token(registration, [SCOPE_SCORE])
    late = PlatformServices.from_app(app)
    monkeypatch.setattr(late, "_cached_token", lambda *args: None)  # it looked before `first`

    second = late.access_token(registration, [SCOPE_SCORE])

    assert second == first  # read again under the row lock: no second token request
    assert platform.token_requests == 1
    assert [row.access_token for row in cached_tokens()] == [first]


def test_workers_refreshing_together_make_one_token_request(app, platform, registration,
                                                           monkeypatch):
    """Four PlatformServices (four processes' worth of in-process locks) need a token at once:
    the row lock lets one fetch it, the others wait and reuse it."""
    start, tokens, errors = threading.Barrier(4), [], []
    real_request = PlatformServices._request_token

    def slow_request(self, *args):  # a token endpoint slow enough for every worker to ask
        time.sleep(0.3)
        return real_request(self, *args)

    monkeypatch.setattr(PlatformServices, "_request_token", slow_request)

    def worker():
        with app.app_context():
            services = PlatformServices.from_app(app)
            start.wait(timeout=10)
            try:
                tokens.append(services.access_token(registration, [SCOPE_NRPS]))
            except Exception as exc:  # the assertion below shows it
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == [] and len(tokens) == 4
    assert platform.token_requests == 1
    assert set(tokens) == {platform.issued_tokens[0]["access_token"]}
    assert [row.access_token for row in cached_tokens()] == tokens[:1]


def test_token_refused_in_two_workers_is_fetched_again_once(app, platform, registration):
    first, second = PlatformServices.from_app(app), PlatformServices.from_app(app)
    old = first.access_token(registration, [SCOPE_SCORE])
    platform.expire_access_tokens()  # both workers hold `old`; the platform answers it with 401

    renewed = first.access_token(registration, [SCOPE_SCORE], refused=old)
    also = second.access_token(registration, [SCOPE_SCORE], refused=old)

    assert renewed == also != old
    assert platform.token_requests == 2


def test_token_is_sealed_at_rest(app, platform, registration, services):
    token = services.access_token(registration, [SCOPE_SCORE])

    [sealed] = db.session.scalars(select(PlatformToken.sealed_token)).all()
    db.session.rollback()
    assert token not in sealed
    assert platform_services._unsealed(sealed) == token


def test_token_sealed_under_another_secret_key_is_fetched_again(app, platform, registration,
                                                                 services):
    services.access_token(registration, [SCOPE_SCORE])
    app.config["SECRET_KEY"] = "another secret key, another sealing key"
    services._memory.clear()  # a restart with the new key

    token = services.access_token(registration, [SCOPE_SCORE])

    assert token == platform.issued_tokens[1]["access_token"]
    assert platform.token_requests == 2


def test_token_store_failure_is_retryable_and_logged_without_the_token(platform, registration,
                                                                       services, monkeypatch,
                                                                       caplog):
    real_update = platform_services.update
    # A write the database refuses, with the (here unsealed) token among its parameters.
    monkeypatch.setattr(platform_services, "_sealed", lambda token: token)
    monkeypatch.setattr(platform_services, "update",
                        lambda table: real_update(table).values(id="not a number"))

    with pytest.raises(PlatformServiceError) as raised:
        services.access_token(registration, [SCOPE_SCORE])

    token = platform.issued_tokens[0]["access_token"]
    assert raised.value.retryable
    assert "the shared token row is unavailable" in caplog.text
    assert token not in caplog.text and token not in raised.value.message
    assert cached_tokens() == []


def test_each_thread_gets_its_own_http_session(app, context):
    services = PlatformServices.from_app(app)
    sessions = []
    thread = threading.Thread(target=lambda: sessions.append(services.session))
    thread.start()
    thread.join()

    assert services.session is services.session
    assert sessions[0] is not services.session


def test_roster_never_follows_a_next_link_to_another_host(platform, registration, services,
                                                          monkeypatch):
    monkeypatch.setattr(platform, "_page", lambda rows, *args: (
        rows[:2], {"Link": '<http://elsewhere.example/memberships?from=2>; rel="next"'}))

    with pytest.raises(PlatformServiceError) as raised:
        services.roster(registration, platform.memberships_url())

    assert (raised.value.status, raised.value.retryable) == (None, False)
    assert "elsewhere.example" in raised.value.message
    assert len(requests_to(platform, "/memberships")) == 1
