"""End to end in headless Chromium: the browser really does not send the tool's state cookie at
launch, and the platform's LTI platform storage (1EdTech "LTI Client Side postMessages", as
Canvas, D2L and Blackboard offer it through `lti_storage_target`) carries the launch instead.

Sites and origins, and why:

* the tool: `http://127.0.0.1:<tool port>` (TOOL_BASE_URL);
* the fake platform's issuer stays `http://127.0.0.1:<platform port>`: the id_token's `iss`, the
  login initiation's `iss` and the registration's issuer must be the same string, and the
  FakePlatform signs every token with `iss = platform.issuer`;
* the course page and the platform's OIDC auth endpoint: `http://localhost:<platform port>`.
  The tool posts its `lti.put_data` / `lti.get_data` messages with targetOrigin = the origin of
  the registration's `auth_login_url`, so the frame answering them (here `_parent`, the course
  page) must be on exactly that origin. The registration therefore names the platform's
  endpoints on `localhost` while its issuer stays on `127.0.0.1`, much as Canvas's issuer
  (canvas.instructure.com) differs from the host of its auth endpoint (sso.canvaslms.com).

`localhost` and `127.0.0.1` are different *sites*, so the tool's iframe is cross-site: its
SameSite=Lax state cookie is neither kept from the login answer nor sent with the launch POST
from auth.php's auto-submitting form. No browser flag is needed to block third-party cookies,
and the same FakePlatform server (wrapped, not edited) serves the course page, so the platform
stays one process on one port as a real LMS is one site.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool import create_app
from tests.browser_support import ROOM_URL, Problems, course_page, expect
from tests.conftest import BBB_SECRET, empty_tables, row_counts
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.lti_platform import FakePlatform

FLOW_MS = 15_000  # a launch through platform storage, from the course page to the tool's answer

STATE_COOKIE_PREFIX = "lti_state_"
WRONG_BINDING = "someone-elses-binding"

# The course page of an LMS that offers platform storage: it answers the tool's frame the way
# the spec's "lti.*" postMessages ask, keeping values per (tool origin, key) in a Map. Every
# message it sees is logged in `window.ltiStorageLog` for the test. `MODE` is "ok", or "wrong"
# (lti.get_data answers another value) or "error" (lti.get_data answers an error).
STORAGE_JS = r"""
(function () {
  var TOOL_ORIGIN = %(tool_origin)s, MODE = %(mode)s;
  var store = new Map();
  window.ltiStorageLog = [];
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.subject !== "string") { return; }
    var tool = document.querySelector("iframe[name=tool]").contentWindow;
    var accepted = event.source === tool && event.origin === TOOL_ORIGIN;
    window.ltiStorageLog.push({subject: data.subject, key: data.key, value: data.value,
                               message_id: data.message_id, origin: event.origin, accepted: accepted});
    if (!accepted) { return; }  // a platform answers only the tool it launched, on its origin
    var reply = {subject: data.subject + ".response", message_id: data.message_id};
    var slot = event.origin + " " + data.key;
    if (data.subject === "lti.capabilities") {
      reply.supported_messages = [{subject: "lti.capabilities"}, {subject: "lti.put_data"},
                                  {subject: "lti.get_data"}];
    } else if (data.subject === "lti.put_data") {
      if (typeof data.key !== "string" || typeof data.value !== "string") {
        reply.error = {code: "bad_request", message: "key and value must be strings"};
      } else {
        store.set(slot, data.value);
        reply.key = data.key;
        reply.value = data.value;
      }
    } else if (data.subject === "lti.get_data") {
      reply.key = data.key;
      if (MODE === "error") {
        reply.error = {code: "server_error", message: "storage unavailable"};
      } else if (MODE === "wrong") {
        reply.value = %(wrong)s;
      } else if (store.has(slot)) {
        reply.value = store.get(slot);
      } else {
        reply.error = {code: "bad_request", message: "no value for this key"};
      }
    } else {
      reply = {subject: data.subject + ".response", message_id: data.message_id,
               error: {code: "unsupported_subject", message: "unsupported subject " + data.subject}};
    }
    event.source.postMessage(reply, event.origin);
  });
})();
"""


class PlatformWithCoursePage:
    """WSGI app in front of the FakePlatform's own: `GET /course?user=&storage=` is the course
    page (platform storage listener, login form posted into the tool's iframe); every other path
    goes to the FakePlatform unchanged."""

    def __init__(self, platform: FakePlatform, platform_app, tool_url: str):
        self.platform = platform
        self.platform_app = platform_app
        self.tool_url = tool_url

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] != "/course":
            return self.platform_app(environ, start_response)
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        fields = {
            **self.platform.login_initiation(user=query.get("user", "teacher")),
            "lti_storage_target": "_parent",
        }
        script = STORAGE_JS % {
            "tool_origin": json.dumps(self.tool_url),
            "mode": json.dumps(query.get("storage", "ok")),
            "wrong": json.dumps(WRONG_BINDING),
        }
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [course_page(self.tool_url, fields, extra_script=script)]


@dataclass
class StorageLive:
    tool: ServedApp
    platform: FakePlatform
    platform_site: str  # http://localhost:<platform port>: course page and OIDC auth endpoint
    app: object

    def course_url(self, user: str, storage: str = "ok") -> str:
        return f"{self.platform_site}/course?user={user}&storage={storage}"


@pytest.fixture
def storage_live(migrated, database_url, keys_dir, tmp_path):
    later = LaterApp()
    tool = ServedApp(later)  # binds now: its URL is the tool's TOOL_BASE_URL
    with FakeBigBlueButton(BBB_SECRET) as bbb, FakePlatform(
        tool_base_url=tool.url, tool_jwks=tool.url + "/.well-known/jwks.json"
    ) as platform:
        werkzeug_server = platform._server._server
        werkzeug_server.app = PlatformWithCoursePage(platform, werkzeug_server.app, tool.url)
        site = f"http://localhost:{platform._server.port}"
        assert urlsplit(platform.issuer).hostname == "127.0.0.1"
        registration = {
            **platform.registration_args(),
            "auth_login_url": site + "/mod/lti/auth.php",
            "auth_token_url": site + "/mod/lti/token.php",
            "key_set_url": site + "/mod/lti/certs.php",
        }
        config_file = tmp_path / "tool_config.json"
        config_file.write_text(json.dumps({platform.issuer: [registration]}))
        app = create_app({
            "TESTING": True,
            "DATABASE_URL": database_url,
            "TOOL_BASE_URL": tool.url,
            "KEYS_DIR": str(keys_dir),
            "TOOL_CONFIG": str(config_file),
            "SECRET_KEY": "test-secret-key",
            "BBB_SERVER_URL": bbb.url,
            "BBB_SHARED_SECRET": BBB_SECRET,
        })
        later.app = app
        tool.start()
        try:
            yield StorageLive(tool, platform, site, app)
        finally:
            tool.stop()
            empty_tables(app)


class StorageLaunch:
    """One fresh browser profile opening the course page; records what went to the tool."""

    def __init__(self, browser, live: StorageLive, user: str, storage: str = "ok"):
        self.live = live
        self.context = browser.new_context()
        self.context.set_default_timeout(10_000)
        self.problems = Problems()
        self.page = self.problems.watch(self.context.new_page())
        self.launch_posts = []  # Playwright Requests: POST /lti/launch, in order
        self.login_responses = []
        self.console = []  # every console message of every frame, warnings included
        self.seen_at = []  # (what, time.monotonic()) of the steps of the launch
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("request", self._on_request)
        self.page.on("response", self._on_response)
        self.page.goto(live.course_url(user, storage))
        self.frame = self.page.frame(name="tool")
        assert self.frame is not None, "the course page has no iframe named tool"

    def _on_request(self, request):
        if request.method == "POST" and request.url == self.live.tool.url + "/lti/launch":
            self.launch_posts.append(request)
            self.seen_at.append(("launch request", time.monotonic()))
        elif request.url.startswith(self.live.platform_site + "/mod/lti/auth.php"):
            self.seen_at.append(("auth request", time.monotonic()))

    def _on_response(self, response):
        if response.url.split("?")[0] == self.live.tool.url + "/lti/login":
            self.login_responses.append(response)
            self.seen_at.append(("login response", time.monotonic()))
        elif response.url == self.live.tool.url + "/lti/launch":
            self.seen_at.append(("launch response", time.monotonic()))

    def gaps(self) -> list[tuple[str, str, float]]:
        """Seconds between consecutive steps: the storage pages wait at most 2 s for an answer,
        so a gap that long means a put or get went unanswered and the page went on anyway."""
        return [(a, b, round(tb - ta, 3)) for (a, ta), (b, tb) in itertools.pairwise(self.seen_at)]

    def posted(self, request) -> dict:
        return {k: v[0] for k, v in parse_qs(request.post_data or "", keep_blank_values=True).items()}

    def storage_log(self) -> list[dict]:
        return self.page.evaluate("() => window.ltiStorageLog")

    def assert_no_state_cookie_sent(self):
        assert self.launch_posts, "the browser never posted to /lti/launch"
        for request in self.launch_posts:
            cookie = request.all_headers().get("cookie", "")
            assert STATE_COOKIE_PREFIX not in cookie, f"the launch POST carried a state cookie: {cookie}"
        kept = [c for c in self.context.cookies(self.live.tool.url) if c["name"].startswith(STATE_COOKIE_PREFIX)]
        assert kept == [], f"the browser kept the tool's cross-site Lax cookie: {kept}"

    def assert_tool_tried_the_cookie(self):
        """The login answer did set the cookie: the browser, not the tool, dropped it."""
        assert len(self.login_responses) == 1, self.login_responses
        answer = self.login_responses[0]
        assert answer.status == 200, "a login with lti_storage_target answers the storage page"
        assert answer.header_value("set-cookie").startswith(STATE_COOKIE_PREFIX)

    def close(self):
        self.context.close()


@pytest.fixture
def open_course(browser, storage_live):
    opened: list[StorageLaunch] = []

    def open_(user: str, storage: str = "ok") -> StorageLaunch:
        launch = StorageLaunch(browser, storage_live, user, storage)
        opened.append(launch)
        return launch

    yield open_
    for launch in opened:
        launch.close()


# --------------------------------------------------------------------------- tests
def test_launch_without_cookie_succeeds_through_platform_storage(open_course, storage_live):
    teacher = open_course("teacher")
    teacher.frame.wait_for_url(ROOM_URL)
    join = teacher.frame.locator("#join")
    expect(join).to_be_visible()
    expect(join).to_have_text("Start class", timeout=FLOW_MS)

    teacher.assert_tool_tried_the_cookie()
    teacher.assert_no_state_cookie_sent()
    # First the id_token alone (the tool answers the storage page), then the same launch again
    # with the binding read back from platform storage.
    assert len(teacher.launch_posts) == 2, [r.post_data for r in teacher.launch_posts]
    first, second = (teacher.posted(r) for r in teacher.launch_posts)
    assert set(first) == {"id_token", "state"}
    assert second["id_token"] == first["id_token"] and second["state"] == first["state"]
    key = STATE_COOKIE_PREFIX + first["state"]

    log = teacher.storage_log()
    assert [entry["subject"] for entry in log] == ["lti.put_data", "lti.get_data"], log
    put, get = log
    assert put["key"] == get["key"] == key
    assert put["accepted"] and get["accepted"] and put["origin"] == storage_live.tool.url
    assert put["message_id"] and get["message_id"] and put["message_id"] != get["message_id"]
    assert second["lti_storage_binding"] == put["value"], "the binding posted is the one stored at login"
    # Both storage pages went on because the platform answered, not because they timed out.
    steps = [(a, b) for a, b, _ in teacher.gaps()]
    assert steps == [
        ("login response", "auth request"),  # storage_login.html: put, answered, then auth.php
        ("auth request", "launch request"),
        ("launch request", "launch response"),
        ("launch response", "launch request"),  # storage_launch.html: get, answered, re-post
        ("launch request", "launch response"),
    ], teacher.gaps()
    slow = [gap for gap in teacher.gaps() if gap[2] >= 1.8]
    assert slow == [], f"a storage page waited for its 2 s timeout: {slow}"

    assert teacher.problems.items == []
    noisy = [(kind, text) for kind, text in teacher.console if kind in ("error", "warning")]
    assert noisy == [], noisy  # e.g. a postMessage whose targetOrigin is not the course page's


def _refused_launch(open_course, storage_live, storage):
    """Open the course page with a platform storage that answers `lti.get_data` wrongly; wait
    for the tool's refusal and check what both refusals share. Returns the StorageLaunch."""
    before = row_counts(storage_live.app)
    student = open_course("student", storage)
    # The whole flow (login, storage, authorization, launch, storage again) crosses five pages:
    # on a loaded machine that takes longer than an expectation's default 5 s.
    expect(student.frame.locator("#error-title")).to_have_text("The class could not be opened", timeout=FLOW_MS)

    student.assert_tool_tried_the_cookie()
    student.assert_no_state_cookie_sent()
    assert len(student.launch_posts) == 2, [r.post_data for r in student.launch_posts]
    first, second = (student.posted(r) for r in student.launch_posts)
    assert student.launch_posts[0].response().status == 200  # the storage page
    assert student.launch_posts[1].response().status == 403
    expected_binding = WRONG_BINDING if storage == "wrong" else ""  # "" when get_data failed
    assert second["lti_storage_binding"] == expected_binding

    log = student.storage_log()
    assert [entry["subject"] for entry in log] == ["lti.put_data", "lti.get_data"], log
    assert log[0]["key"] == log[1]["key"] == STATE_COOKIE_PREFIX + first["state"]

    after = row_counts(storage_live.app)
    assert {k: v for k, v in after.items() if k != "login_states"} == {
        k: v for k, v in before.items() if k != "login_states"
    }, "a refused launch wrote something"
    assert ROOM_URL.search(student.frame.url) is None
    launch_url = f"{storage_live.tool.url}/lti/launch"

    def expected(problem: str) -> bool:  # the refusal itself, and Chromium's console line about it
        return problem == f"HTTP 403 {launch_url}" or (
            problem.startswith("console: Failed to load resource: the server responded with a status of 403")
            and f"'url': '{launch_url}'" in problem
        )

    assert [p for p in student.problems.items if not expected(p)] == []
    return student


def test_platform_storage_error_on_get_shows_the_blocked_cookie_page(open_course, storage_live):
    """lti.get_data answers an error: for the tool that is "no binding came back", the same as a
    blocked cookie on a platform without storage: say so and offer a new window."""
    student = _refused_launch(open_course, storage_live, "error")
    expect(student.frame.locator("#cookie-framed p.lead")).to_contain_text("blocked the cookie")
    expect(student.frame.locator("#cookie-window")).to_be_hidden()  # the advice for a window
    new_window = student.frame.locator("a#open-new-window")
    expect(new_window).to_be_visible()
    href = new_window.get_attribute("href")
    # The fake platform is Moodle: its single-use hint names the course module, so the new
    # window opens Moodle's own launch page for the activity.
    assert "/mod/lti/launch.php?id=" in href, href
    assert new_window.get_attribute("target") == "_blank"


def test_platform_storage_returning_another_binding_is_refused_as_a_mismatch(open_course, storage_live):
    """lti.get_data answers a value that is not this login's binding: that is what a forged or
    crossed launch looks like, so the tool refuses it like a wrong cookie, without the
    new-window link (which would restart someone else's login)."""
    student = _refused_launch(open_course, storage_live, "wrong")
    expect(student.frame.locator("p.lead")).to_have_text("Please go back to your course and open the activity again.")
    expect(student.frame.locator("a#open-new-window")).to_have_count(0)
