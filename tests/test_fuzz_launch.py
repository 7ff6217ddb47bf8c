"""Property-based fuzzing of signed launches: whatever a registered platform signs, the tool
answers 303 or a readable 4xx, never a 5xx, and writes all of the launch or nothing.

Each example is a real launch: a login at the tool (state, nonce and the state cookie), the fake
platform's authorization answer, then the platform's own id_token with some claims replaced —
types, lengths, unicode (NUL, control characters, unpaired surrogates), huge numbers, nested
structures, missing claims — and signed again with the platform's key, so every example gets
past the signature check to the code that reads claims. Properties:

* never a 5xx;
* a refused launch (4xx) writes nothing and leaves the login's state unspent;
* an accepted launch (303) spent exactly its state and nonce and wrote consistent rows: the user
  is the token's `sub`, the link is the token's link id, the enrolment joins them in the room,
  and display values are clean and fit their columns.

`FUZZ_EXAMPLES` sets the number of examples (60 by default, the "lti" profile in conftest.py);
`FUZZ_RANDOM=1` draws new ones on each run.
"""
from __future__ import annotations

import copy
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Course, Enrolment, ResourceLink, Room, User
from tests.conftest import row_counts
from tests.support import claims_of

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DELETE = object()  # "leave the claim out", as opposed to JSON null

PATHS = [
    ("name",), ("given_name",), ("family_name",), ("email",), ("sub",), ("nonce",),
    ("exp",), ("iat",), ("aud",), ("azp",),
    (LTI + "version",), (LTI + "message_type",), (LTI + "deployment_id",), (LTI + "target_link_uri",),
    (LTI + "roles",), (LTI + "roles", 0),
    (LTI + "context",), (LTI + "context", "id"), (LTI + "context", "label"), (LTI + "context", "title"),
    (LTI + "resource_link",), (LTI + "resource_link", "id"), (LTI + "resource_link", "title"),
    (LTI + "launch_presentation",), (LTI + "launch_presentation", "return_url"),
    (LTI + "launch_presentation", "document_target"),
    (LTI + "custom",), (LTI + "custom", "provider"),
    (AGS,), (AGS, "lineitem"), (AGS, "lineitems"), (NRPS,), (NRPS, "context_memberships_url"),
]

# Every character, unpaired surrogates and control characters included.
any_character = st.characters(exclude_categories=())
special_strings = st.sampled_from([
    "", "\x00", "a\x00b", "\ud800", "\udfff x", "\x1b[31m", "x" * 255, "x" * 256, "é" * 300,
    "https://evil.example.com/", "http://localhost/lti/launch", "javascript:alert(1)", "http://[::1",
    "LtiResourceLinkRequest", "LtiDeepLinkingRequest", "1.3.0", "1", "moodle", "bbb", "livekit",
    "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
])
strings = st.one_of(
    special_strings,
    st.text(any_character, max_size=40),
    st.text(any_character, min_size=250, max_size=1100),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63, 10**30, 253_402_300_799, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(strings, numbers, st.booleans(), st.none())
values = st.one_of(
    st.just(DELETE),
    scalars,
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=8,
    ),
)
mutations = st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=4)


def mutated(claims: dict, changes) -> dict:
    """The claims with each (path, value) applied; a parent that is not a container is replaced."""
    payload = copy.deepcopy(claims)
    for path, value in changes:
        parent = payload
        for key in path[:-1]:
            if not isinstance(parent.get(key), (dict, list)):
                parent[key] = {}
            parent = parent[key]
        _set(parent, path[-1], value)
    return payload


def _set(parent, key, value) -> None:
    if isinstance(parent, list):
        if not isinstance(key, int) or not parent:
            return
        if value is DELETE:
            parent.pop(0)
        else:
            parent[0] = value
    elif value is DELETE:
        parent.pop(key, None)
    else:
        parent[key] = value


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _assert_clean(value: str, model, column: str) -> None:
    assert not CONTROL.search(value), (column, value[:60])
    assert len(value) <= model.__table__.c[column].type.length, (column, len(value))


def no_context_hash(link_id: str) -> str:
    return "no-context-sha256:" + hashlib.sha256(link_id.encode()).hexdigest()


def assert_recorded(app, platform, payload: dict) -> None:
    """An accepted launch wrote rows that agree with the token it accepted."""
    link_id = payload[LTI + "resource_link"]["id"]
    context_id = (payload.get(LTI + "context") or {}).get("id") or f"no-context:{link_id}"
    with app.app_context():
        user = db.session.scalar(select(User).where(User.issuer == platform.issuer, User.sub == payload["sub"]))
        assert user is not None
        course = db.session.scalar(select(Course).where(
            Course.issuer == platform.issuer, Course.deployment_id == payload[LTI + "deployment_id"],
            Course.context_id.in_([context_id, no_context_hash(link_id)])))
        assert course is not None, context_id
        link = db.session.scalar(select(ResourceLink).where(
            ResourceLink.course_id == course.id, ResourceLink.resource_link_id == link_id))
        assert link is not None
        enrolment = db.session.scalar(
            select(Enrolment).where(Enrolment.user_id == user.id, Enrolment.resource_link_id == link.id)
        )
        assert enrolment is not None and enrolment.role in ("moderator", "attendee")
        assert enrolment.lti_roles == payload[LTI + "roles"]
        room = db.session.scalar(select(Room).where(Room.resource_link_id == link.id))
        assert room is not None
        for column in ("name", "given_name", "family_name", "email"):
            _assert_clean(getattr(user, column), User, column)
        _assert_clean(course.title, Course, "title")
        _assert_clean(course.label, Course, "label")
        _assert_clean(link.title, ResourceLink, "title")
        _assert_clean(room.name, Room, "name")


@pytest.mark.parametrize("user", ["teacher", "student"])
@given(changes=mutations)
def test_fuzzed_signed_launches_never_fail_and_write_all_or_nothing(app, lms, platform, user, changes):
    client = app.test_client()
    form = lms.start_login(client, as_=user)
    payload = mutated(claims_of(form["id_token"]), changes)
    token = platform.sign_jwt(payload)
    before = row_counts(app)
    response = client.post("/lti/launch", data={"id_token": token, "state": form["state"]})
    after = row_counts(app)
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body[:500]
    if response.status_code == 303:
        assert after["login_states"] == before["login_states"] - 1, "the state must be spent"
        assert after["used_nonces"] == before["used_nonces"] + 1, "the nonce must be recorded"
        assert_recorded(app, platform, payload)
        page = client.get(response.headers["Location"])
        assert page.status_code == 200, page.get_data(as_text=True)[:500]
    else:
        assert 400 <= response.status_code < 500, (response.status_code, body[:300])
        assert "<h1" in body and "Traceback" not in body
        assert after == before, "a refused launch wrote something or spent its state"
