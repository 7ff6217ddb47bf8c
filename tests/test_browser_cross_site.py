"""End to end in headless Chromium: Moodle on one site, the tool on another, over plain http.

Observed before: with Moodle at 127.0.0.1 and the tool at localhost (a local trial), every way
in failed — embedded, *New window*, and the tool's own "open in a new window" button, which
looped to the same error. Over http the state cookie can only be SameSite=Lax, and a Lax cookie
never comes with the platform's cross-site form POST of the id_token.

Now (the Contract's "Launches without a cookie"): a top-level launch without the cookie gets a
page of the tool that posts the same launch to the tool again — a same-site POST in a top-level
window, so the browser sends the cookie — and completes; a framed launch (Sec-Fetch-Dest:
iframe) is refused at once with the way out, a new window; the state check is never skipped.

Sites here, as in test_browser_storage.py: the tool at `http://127.0.0.1:<tool port>`; the fake
Moodle's issuer stays `http://127.0.0.1:<platform port>` (tokens, registration, and Moodle's own
`mod/lti/launch.php`, which the new-window button opens), while the course page and the OIDC
auth endpoint are on `http://localhost:<platform port>`: so the id_token's form POST comes
from another site, exactly as from a real Moodle on another domain.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

import pytest
import requests

from lti_tool import create_app
from tests.browser_support import ROOM_URL, Problems, course_page, expect
from tests.conftest import BBB_SECRET, empty_tables, row_counts
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.lti_platform import FakePlatform, auto_submit_form
from tests.support import RECORDS

STATE_COOKIE_PREFIX = "lti_state_"


def _window_page(tool_url: str, fields: dict) -> bytes:
    """Moodle with the tool's launch container set to open in the same window: the course page
    posts the login initiation top-level (no iframe)."""
    return course_page(tool_url, fields).replace(b' target="tool"', b"").replace(
        b'<iframe name="tool" title="LTI Live Activity" allow="camera; microphone; display-capture"></iframe>', b""
    )


class MoodleSite:
    """WSGI app in front of the FakePlatform's own: the course page (`/course?user=&mode=frame`,
    `mode=window`, or `mode=login-only`: a top-level login whose hint auth.php will refuse, so the
    browser ends up holding a login's cookie and nothing else), Moodle's
    `mod/lti/launch.php?id=<cmid>` (what the tool's new-window button opens: a fresh launch of the
    activity, top-level), and `/attack`, a page on the platform's site that auto-posts
    `attack_form` to the tool's launch URL. Everything else goes to the FakePlatform unchanged."""

    def __init__(self, platform: FakePlatform, platform_app, tool_url: str):
        self.platform, self.platform_app, self.tool_url = platform, platform_app, tool_url
        self.user = "student"  # who is "logged in to Moodle": the last course page's user
        self.attack_form: dict = {}

    def __call__(self, environ, start_response):
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        path = environ["PATH_INFO"]
        if path == "/course":
            self.user = query.get("user", "student")
            fields = self.platform.login_initiation(user=self.user)
            if query.get("mode") == "login-only":
                fields["lti_message_hint"] = json.dumps({"cmid": 2, "launchid": "not-a-launch"})
            if query.get("mode") == "frame":
                page = course_page(self.tool_url, fields)
            else:
                page = _window_page(self.tool_url, fields)
        elif path == "/attack":
            page = auto_submit_form(self.tool_url + "/lti/launch", self.attack_form).encode()
        elif path == "/mod/lti/launch.php":
            link = next(link for link in self.platform.resource_links.values() if str(link.cmid) == query.get("id"))
            fields = self.platform.login_initiation(user=self.user, resource_link_id=link.id)
            page = _window_page(self.tool_url, fields)
        else:
            return self.platform_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page]


@dataclass
class CrossSite:
    tool: ServedApp
    platform: FakePlatform
    moodle: MoodleSite
    moodle_site: str  # http://localhost:<platform port>: course page and OIDC auth endpoint
    app: object

    def course_url(self, user: str, mode: str) -> str:
        return f"{self.moodle_site}/course?user={user}&mode={mode}"


@pytest.fixture
def cross_site(migrated, database_url, keys_dir, tmp_path):
    later = LaterApp()
    tool = ServedApp(later)
    with FakeBigBlueButton(BBB_SECRET) as bbb, FakePlatform(
        tool_base_url=tool.url, tool_jwks=tool.url + "/.well-known/jwks.json"
    ) as platform:
        werkzeug_server = platform._server._server
        moodle = werkzeug_server.app = MoodleSite(platform, werkzeug_server.app, tool.url)
        site = f"http://localhost:{platform._server.port}"
        registration = {
            **platform.registration_args(),
            "auth_login_url": site + "/mod/lti/auth.php",
            "auth_token_url": site + "/mod/lti/token.php",
        }
        config_file = tmp_path / "tool_config.json"
        config_file.write_text(json.dumps({platform.issuer: [registration]}))
        app = create_app({
            "TESTING": True, "DATABASE_URL": database_url, "TOOL_BASE_URL": tool.url,
            "KEYS_DIR": str(keys_dir), "TOOL_CONFIG": str(config_file), "SECRET_KEY": "test-secret-key",
            "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET,
        })
        later.app = app
        tool.start()
        try:
            yield CrossSite(tool, platform, moodle, site, app)
        finally:
            tool.stop()
            empty_tables(app)


class Browser:
    """One fresh browser profile; records every POST to the tool's /lti/launch."""

    def __init__(self, browser, live: CrossSite):
        self.live = live
        self.context = browser.new_context()
        self.context.set_default_timeout(10_000)
        self.problems = Problems()
        self.launch_posts = []
        self.context.on("request", self._on_request)
        self.page = self.problems.watch(self.context.new_page())

    def _on_request(self, request):
        if request.method == "POST" and request.url == self.live.tool.url + "/lti/launch":
            self.launch_posts.append(request)

    def posted(self, request) -> dict:
        return {k: v[0] for k, v in parse_qs(request.post_data or "", keep_blank_values=True).items()}

    @staticmethod
    def state_cookies_sent(request) -> list[str]:
        cookie = request.all_headers().get("cookie", "")
        return [c.split("=")[0] for c in cookie.split("; ") if c.startswith(STATE_COOKIE_PREFIX)]

    def unexpected_problems(self, *refused_urls: str) -> list[str]:
        """Problems other than the tool's 403 (and Chromium's console line about it), and other
        than refusals the test caused on purpose at `refused_urls`."""
        launch_url = f"{self.live.tool.url}/lti/launch"

        def expected(problem: str) -> bool:
            return problem == f"HTTP 403 {launch_url}" or (
                "the server responded with a status of 403" in problem and launch_url in problem
            ) or any(url in problem for url in refused_urls)

        return [p for p in self.problems.items if not expected(p)]

    def close(self):
        self.context.close()


@pytest.fixture
def browsers(browser, cross_site):
    opened: list[Browser] = []

    def open_() -> Browser:
        opened.append(Browser(browser, cross_site))
        return opened[-1]

    yield open_
    for one in opened:
        one.close()


def assert_resubmitted_with_the_cookie(person: Browser) -> None:
    """Two launch POSTs: the platform's, cross-site and without the cookie; then the tool's own
    re-submission of the same launch, same-site, with it."""
    assert len(person.launch_posts) == 2, [r.post_data for r in person.launch_posts]
    first, second = person.launch_posts
    assert person.state_cookies_sent(first) == [], "a Lax cookie came with a cross-site POST?"
    assert first.response().status == 200  # the re-submitting page
    sent, again = person.posted(first), person.posted(second)
    assert again["id_token"] == sent["id_token"] and again["state"] == sent["state"]
    assert again["lti_resubmitted"] == "1"
    assert person.state_cookies_sent(second) == [STATE_COOKIE_PREFIX + sent["state"]]


# --------------------------------------------------------------------------- tests
def test_a_top_level_launch_from_another_site_over_http_completes(browsers, cross_site):
    teacher = browsers()
    teacher.page.goto(cross_site.course_url("teacher", "window"))
    teacher.page.wait_for_url(ROOM_URL)
    expect(teacher.page.locator("#join")).to_have_text("Start class")
    assert_resubmitted_with_the_cookie(teacher)
    assert teacher.launch_posts[1].all_headers().get("sec-fetch-dest") == "document"
    assert teacher.unexpected_problems() == []
    counts = row_counts(cross_site.app)
    assert counts["login_states"] == 0 and counts["used_nonces"] == 1


def test_a_framed_launch_from_another_site_is_refused_at_once_with_the_new_window_button(browsers, cross_site):
    before = row_counts(cross_site.app)
    student = browsers()
    student.page.goto(cross_site.course_url("student", "frame"))
    frame = student.page.frame(name="tool")
    expect(frame.locator("#error-title")).to_have_text("The class could not be opened")
    assert len(student.launch_posts) == 1, "a framed launch is not re-submitted"
    assert student.launch_posts[0].response().status == 403
    button = frame.locator("a#open-new-window")
    expect(button).to_be_visible()
    expect(frame.locator("#cookie-framed p.lead")).to_contain_text("blocked the cookie")
    expect(frame.locator("#cookie-window")).to_be_hidden()
    after = row_counts(cross_site.app)
    assert {t: after[t] for t in RECORDS} == {t: before[t] for t in RECORDS}
    assert after["login_states"] == before["login_states"] + 1, "the state stays unspent"

    # The way out: Moodle's own launch page for the activity, top-level, which now completes.
    with student.context.expect_page() as opened:
        button.click()
    window = student.problems.watch(opened.value)
    window.wait_for_url(ROOM_URL)
    expect(window.locator("body")).to_contain_text("LTI Live Activity")
    assert len(student.launch_posts) == 3
    assert student.unexpected_problems() == []


def test_the_state_check_still_refuses_a_launch_whose_cookie_belongs_to_another_login(browsers, cross_site):
    """Login CSRF over the re-submission: the browser starts its own login (and holds that
    login's cookie), but the form auth.php answers carries someone else's id_token and state.
    Re-submitting does not help: the browser has no cookie for that state."""
    platform = cross_site.platform
    attacker = requests.Session()
    answer = attacker.post(cross_site.tool.url + "/lti/login", data=platform.login_initiation(user="teacher"),
                           allow_redirects=False)
    stolen = platform.authorize(answer.headers["Location"])
    cross_site.moodle.attack_form = {"id_token": stolen["id_token"], "state": stolen["state"]}
    before = row_counts(cross_site.app)
    victim = browsers()
    victim.page.goto(cross_site.course_url("student", "login-only"))
    victim.page.wait_for_url(re.compile(r".*/mod/lti/auth\.php.*"))
    held = [c["name"] for c in victim.context.cookies(cross_site.tool.url + "/lti/launch")]
    assert len(held) == 1 and held[0].startswith(STATE_COOKIE_PREFIX), held
    victim.page.goto(cross_site.moodle_site + "/attack")
    expect(victim.page.locator("#error-title")).to_have_text("The class could not be opened")
    assert len(victim.launch_posts) == 2
    first, second = victim.launch_posts
    assert victim.posted(second)["state"] == stolen["state"] and victim.posted(second)["lti_resubmitted"] == "1"
    own = victim.state_cookies_sent(second)
    assert len(own) == 1 and own != [STATE_COOKIE_PREFIX + stolen["state"]], "the browser's own login cookie only"
    assert second.response().status == 403
    expect(victim.page.locator("#cookie-window")).to_be_visible()
    expect(victim.page.locator("#cookie-window")).to_contain_text("did not keep")
    expect(victim.page.locator("a#open-new-window")).to_be_hidden()
    after = row_counts(cross_site.app)
    assert {t: after[t] for t in RECORDS} == {t: before[t] for t in RECORDS}
    assert after["login_states"] == before["login_states"] + 1, "both states unspent (the victim's own added)"
    # auth.php refused the victim's own login on purpose (and Chromium then asked for a favicon).
    assert victim.unexpected_problems("/mod/lti/auth.php", "/favicon.ico") == []
