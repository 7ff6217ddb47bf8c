"""First launches at the same moment (a class-start rush): every one succeeds and they share one
course, one resource link and one room. Each missing row is an INSERT … ON CONFLICT DO NOTHING
(lti/launches.py), so the launches that lose a race read the winner's row instead of failing.

Run on PostgreSQL too (TEST_DATABASE_URL), where the launches really overlap.
"""
from __future__ import annotations

import threading
from urllib.parse import urljoin

import requests
from sqlalchemy import func, select

from lti_tool.extensions import db
from lti_tool.models import Course, Enrolment, ResourceLink, Room, User

PEOPLE = ["teacher", "student", "student", "teacher", "student5"]


def _authorized(live, user: str):
    """A browser that logged in and holds the platform's signed answer, not posted yet."""
    browser = requests.Session()
    answer = browser.post(live.platform.tool_login_url, data=live.platform.login_initiation(user=user),
                          allow_redirects=False)
    assert answer.status_code == 302, answer.text[:300]
    form = live.platform.authorize(urljoin(live.platform.tool_login_url, answer.headers["Location"]))
    return browser, form


def test_first_launches_of_one_link_at_the_same_moment_all_succeed_with_one_room(live):
    ready = [_authorized(live, user) for user in PEOPLE]  # the course's and link's first launches
    barrier, answers = threading.Barrier(len(ready)), [None] * len(ready)

    def post(index: int) -> None:
        browser, form = ready[index]
        barrier.wait(timeout=10)
        answers[index] = browser.post(form["action"], data={"id_token": form["id_token"], "state": form["state"]},
                                      allow_redirects=False)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(ready))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    refused = [a.text[:200] for a in answers if a.status_code != 303]
    assert not refused
    rooms = {a.headers["Location"].split("?")[0] for a in answers}
    assert len(rooms) == 1
    with live.app.app_context():
        counts = {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                  for model in (Course, ResourceLink, Room, User, Enrolment)}
    assert counts == {"Course": 1, "ResourceLink": 1, "Room": 1, "User": 3, "Enrolment": 3}
