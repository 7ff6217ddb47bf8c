"""Signed launches whose claims have the wrong type or shape: a readable 4xx, never a 500.

Observed before (each a 500): name, given_name or family_name as an object or a list;
message_type as a list; titles, return_url, AGS and NRPS URLs that were not strings; `exp` at
year 9999; a non-ASCII nonce (hmac.compare_digest on str); and on PostgreSQL an over-long or
NUL-holding sub, name, email, context or link value.

Rules (docs/security.md): identifiers (sub, deployment id, context id, resource link id, nonce)
that are not strings, over 255 characters or hold NUL are refused — cutting them could make two
different ids one. Display values (names, email, titles, labels) are cleaned (control
characters removed) and cut to their column. URLs the tool keeps must be http(s) strings of at
most 1024 characters.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Course, ResourceLink, Room, User
from tests.support import LTI, LaunchAttempt

AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"


@pytest.fixture
def attempt(app, lms):
    return LaunchAttempt(app, lms)


def nested(attempt, claim: str, **changes) -> dict:
    """The token's claim object with some members changed (None removes one)."""
    value = dict(attempt.claims.get(claim) or {})
    for name, new in changes.items():
        if new is None:
            value.pop(name, None)
        else:
            value[name] = new
    return {claim: value}


WRONG_TYPES = {
    "name-object": lambda a: {"name": {"first": "Ann"}},
    "given-name-list": lambda a: {"given_name": ["Ann"]},
    "family-name-number": lambda a: {"family_name": 7},
    "email-list": lambda a: {"email": ["a@example.com"]},
    "message-type-list": lambda a: {LTI + "message_type": ["LtiResourceLinkRequest"]},
    "version-list": lambda a: {LTI + "version": ["1.3.0"]},
    "deployment-number": lambda a: {LTI + "deployment_id": 1},
    "sub-number": lambda a: {"sub": 3},
    "sub-object": lambda a: {"sub": {"id": "3"}},
    "roles-string": lambda a: {LTI + "roles": "Instructor"},
    "roles-entry-number": lambda a: {LTI + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner", 5]},
    "roles-entry-object": lambda a: {LTI + "roles": [{"role": "Learner"}]},
    "context-string": lambda a: {LTI + "context": "LIVE101"},
    "context-id-object": lambda a: nested(a, LTI + "context", id={"x": 1}),
    "context-title-object": lambda a: nested(a, LTI + "context", title={"x": 1}),
    "context-label-list": lambda a: nested(a, LTI + "context", label=["LIVE"]),
    "link-list": lambda a: {LTI + "resource_link": [{"id": "1"}]},
    "link-id-number": lambda a: nested(a, LTI + "resource_link", id=1),
    "link-title-list": lambda a: nested(a, LTI + "resource_link", title=["Live"]),
    "presentation-string": lambda a: {LTI + "launch_presentation": "iframe"},
    "return-url-object": lambda a: nested(a, LTI + "launch_presentation", return_url={"x": 1}),
    "document-target-list": lambda a: nested(a, LTI + "launch_presentation", document_target=["iframe"]),
    "ags-list": lambda a: {AGS: ["x"]},
    "lineitem-number": lambda a: nested(a, AGS, lineitem=5),
    "lineitems-object": lambda a: nested(a, AGS, lineitems={"x": 1}),
    "memberships-url-list": lambda a: nested(a, NRPS, context_memberships_url=["https://x"]),
    "memberships-url-too-long": lambda a: nested(a, NRPS, context_memberships_url="https://x.example/" + "m" * 1100),
    "custom-string": lambda a: {LTI + "custom": "provider=bbb"},
    "custom-list": lambda a: {LTI + "custom": [["provider", "bbb"]]},
    "custom-provider-object": lambda a: nested(a, LTI + "custom", provider={"name": "bbb"}),
    "nonce-number": lambda a: {"nonce": 12345},
    "azp-object": lambda a: {"azp": {"client": "x"}},
}


@pytest.mark.parametrize("change", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_claims_of_the_wrong_type_are_refused_readably(attempt, change):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims=change(attempt))))


IDENTIFIERS = {
    "sub": lambda a, v: {"sub": v},
    "deployment-id": lambda a, v: {LTI + "deployment_id": v},
    "context-id": lambda a, v: nested(a, LTI + "context", id=v),
    "resource-link-id": lambda a, v: nested(a, LTI + "resource_link", id=v),
}
BAD_IDENTIFIERS = {"nul": "3\x00", "over-long": "3" * 256, "lone-surrogate": "3\ud800"}


@pytest.mark.parametrize("value", BAD_IDENTIFIERS.values(), ids=BAD_IDENTIFIERS.keys())
@pytest.mark.parametrize("change", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
def test_identifiers_that_cannot_be_stored_as_they_are_are_refused(attempt, change, value):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims=change(attempt, value))))


def test_identifiers_up_to_255_characters_are_kept_whole(app, attempt):
    long_sub, long_link = "s" * 255, "l" * 255
    changes = {"sub": long_sub, **nested(attempt, LTI + "resource_link", id=long_link)}
    assert attempt.post(id_token=attempt.resign(claims=changes)).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(User.sub)) == long_sub
        assert db.session.scalar(select(ResourceLink.resource_link_id)) == long_link


def test_display_values_are_cleaned_and_cut_to_their_columns(app, attempt):
    dirty = "Ann\x00 \x07Lee\x1b[31m\ud800 " + "é" * 600
    changes = {
        "name": dirty, "given_name": dirty, "family_name": dirty, "email": "a\x00@example.com" + "m" * 300,
        **nested(attempt, LTI + "context", title=dirty * 2, label=dirty),
    }
    changes.update(nested(attempt, LTI + "resource_link", title=dirty * 2))
    assert attempt.post(id_token=attempt.resign(claims=changes)).status_code == 303
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        course = db.session.scalars(select(Course)).one()
        link = db.session.scalars(select(ResourceLink)).one()
        room = db.session.scalars(select(Room)).one()
    for value, limit in ((user.name, 255), (user.given_name, 255), (user.family_name, 255),
                         (user.email, 255), (course.title, 512), (course.label, 255),
                         (link.title, 512), (room.name, 255)):
        assert len(value) <= limit
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value), value[:40]
    assert user.name.startswith("Ann Lee[31m ")
    assert user.email.startswith("a@example.com")


def test_a_token_living_until_year_9999_is_refused(attempt):
    year_9999 = 253_402_300_799
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"exp": year_9999})), 401)


def test_a_token_living_longer_than_a_day_is_refused(attempt):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"exp": int(time.time()) + 86400 + 3600})), 401)


@pytest.mark.parametrize("exp", [1e308, float("inf"), float("nan"), "soon", True],
                         ids=["huge-float", "infinity", "nan", "string", "bool"])
def test_exp_that_is_not_a_time_is_refused(attempt, exp):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"exp": exp})), 401)


@pytest.mark.parametrize("nonce", ["nonce-é", "\u4e2d\u6587", "\x00"], ids=["accent", "cjk", "nul"])
def test_a_non_ascii_nonce_is_refused_not_a_500(attempt, nonce):
    attempt.assert_refused(attempt.post(id_token=attempt.resign(claims={"nonce": nonce})))
