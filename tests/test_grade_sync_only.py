"""Grades when the platform grants less: Moodle's Assignment and Grade Services set to "grade
sync only" gives the score scope without the line-item one. The tool then grades into the
launch's own line item, never tries to make a column, asks tokens only for the scopes granted,
and tells the teacher what the platform allows and how to change it. Over real HTTP against
the fake Moodle, whose tokens and launches carry exactly the scopes its setting grants.
"""
from __future__ import annotations

from urllib.parse import parse_qs

from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import ResourceLink, ScoreDelivery
from tests.fakes.lti_platform import SCOPE_LINEITEM, SCOPE_SCORE
from tests.support import ClassRun, hour_long_class, scores_for


def requested_scopes(platform) -> list[set[str]]:
    """The scopes of every token request the tool made (not only what was granted)."""
    return [set(parse_qs(entry["body"])["scope"][0].split()) for entry in platform.requests_log
            if entry["path"] == "/mod/lti/token.php"]


def line_item_requests(platform) -> list[tuple[str, str]]:
    return [(entry["method"], entry["path"]) for entry in platform.requests_log
            if entry["path"].endswith("/lineitems") or entry["path"].endswith("/lineitem")]


def test_grade_sync_only_grades_into_the_launchs_own_line_item(live):
    platform = live.platform
    platform.grade_sync_only()
    teacher, _ = hour_long_class(live)
    live.run_worker()
    for sub in ("4", "5", "6"):
        (score,) = scores_for(platform, sub)
        assert score["lineitem_id"] == "2"
    assert platform.gradebook["4"]["grade"] == 100.0
    assert line_item_requests(platform) == []
    scopes = requested_scopes(platform)
    assert scopes and all(SCOPE_LINEITEM not in asked for asked in scopes)
    assert {SCOPE_SCORE} in scopes
    with live.app.app_context():
        link = db.session.scalar(select(ResourceLink).where(ResourceLink.resource_link_id == "1"))
        assert SCOPE_LINEITEM not in link.ags_scopes and SCOPE_SCORE in link.ags_scopes
    page = teacher.get("/attendance").text
    assert "grade sync only" in page and "this activity's own grade item" in page
    assert "Use this service for grade sync and column management" in page
    assert "Manage tools" in page and "IMS LTI Assignment and Grade Services" in page


def test_without_a_column_of_its_own_the_tool_never_tries_to_make_one(live):
    platform = live.platform
    platform.grade_sync_only()
    platform.add_resource_link("30", "Ungraded activity", graded=False)
    teacher = live.launch("teacher", resource_link_id="30")
    live.launch("student", resource_link_id="30")
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("student", 0), run.left("student", 30), run.ended(60))
    live.run_worker()
    assert scores_for(platform, "4") == []
    assert line_item_requests(platform) == []
    assert all(SCOPE_LINEITEM not in asked and SCOPE_SCORE not in asked for asked in requested_scopes(platform))
    with live.app.app_context():
        failed = db.session.scalars(select(ScoreDelivery).where(ScoreDelivery.status == "failed")).all()
        assert failed and all("grade sync only" in row.last_error for row in failed)
    page = teacher.get("/attendance").text
    assert "Grades cannot reach the gradebook" in page and "Grade → Type: Point" in page
    assert "Use this service for grade sync and column management" in page


def test_with_column_management_the_tool_still_makes_its_column_when_the_activity_has_none(live):
    platform = live.platform
    platform.add_resource_link("31", "Ungraded activity", graded=False)
    teacher = live.launch("teacher", resource_link_id="31")
    live.launch("student", resource_link_id="31")
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("student", 0), run.left("student", 30), run.ended(60))
    live.run_worker()
    (score,) = scores_for(platform, "4")
    assert platform.line_items[score["lineitem_id"]].tag == "attendance"
    assert ("POST", "/mod/lti/services.php/2/lineitems") in line_item_requests(platform)
    assert "Grades cannot reach" not in teacher.get("/attendance").text
