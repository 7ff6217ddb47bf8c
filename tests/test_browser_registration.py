"""Dynamic registration in headless Chromium, where platforms show it: inside their own
administration page's frame (Moodle, Canvas), and in a tab of its own on a phone-sized screen
(Brightspace opens a new tab).

The platform's page is served by the fake platform on its own origin, before the tool knows the
platform: the tool's registration pages must let it frame them. The page records every message
it receives, so the test sees the tool's `org.imsglobal.lti.close` arrive (LTI Dynamic
Registration 1.0, section 3.6: posted to window.opener, else window.parent).

Skipped when Debian's Chromium (/usr/bin/chromium) or Playwright is missing.
"""
from __future__ import annotations

import html
import json
from urllib.parse import urlencode

import pytest

from lti_tool import create_app
from lti_tool.access_log import QuietRequestHandler
from tests.browser_support import Problems, expect
from tests.conftest import empty_tables, row_counts, tool_overrides
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.lti_platform import FakePlatform

PHONE = {"viewport": {"width": 375, "height": 667}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
LISTENER = """
window.received = [];
window.addEventListener("message", function (event) {
  window.received.push({data: event.data, origin: event.origin,
                        fromTool: event.source === window.toolWindow || event.source === frames.registration});
});
"""


def platform_page(query: dict, tool_url: str, platform: FakePlatform) -> str:
    """The platform's administration page: the tool's registration URL in a frame
    (`?how=frame`, Moodle's and Canvas's way) or behind a button opening it in a new tab
    (`?how=tab`, Brightspace's)."""
    url = f"{tool_url}/lti/register?{urlencode(platform.start_registration())}"
    if query.get("how") == "tab":
        body = ('<button id="open-tool" type="button">Register the tool</button>'
                f'<script>document.getElementById("open-tool").addEventListener("click", function () {{'
                f' window.toolWindow = window.open({json.dumps(url)}, "_blank"); }});</script>')
    else:
        body = (f'<iframe name="registration" title="Register a tool" src="{html.escape(url)}" '
                'style="width:100%;height:560px;border:0"></iframe>')
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<title>Manage tools</title><script>{LISTENER}</script></head>"
            f"<body><h1>Manage tools</h1>{body}</body></html>")


@pytest.fixture
def served(migrated, database_url, keys_dir, tmp_path, platform_key):
    forward = LaterApp()
    tool = ServedApp(forward, request_handler=QuietRequestHandler)
    config_file = tmp_path / "tool_config.json"
    config_file.write_text("{}")
    app = create_app(tool_overrides(database_url, keys_dir, config_file, TOOL_BASE_URL=tool.url))
    forward.app = app
    tool.start()
    with FakePlatform(tool_base_url=tool.url, signing_key=platform_key) as platform:
        platform.activity_page = lambda query: platform_page(query, tool.url, platform)
        try:
            yield tool, platform, app
        finally:
            tool.stop()
            empty_tables(app)


def scrolls_sideways(page) -> bool:
    return page.evaluate("() => document.scrollingElement.scrollWidth > document.scrollingElement.clientWidth")


def messages_received(page) -> list[dict]:
    page.wait_for_function("() => window.received.length > 0")
    return page.evaluate("() => window.received")


def test_registration_in_the_platforms_frame_closes_the_dialog(browser, served):
    tool, platform, app = served
    context = browser.new_context()
    context.set_default_timeout(15_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(platform.activity_url(how="frame"))
    frame = page.frame(name="registration")
    expect(frame.locator("h1")).to_have_text("Register the live-class tool")
    expect(frame.locator("main")).to_contain_text(platform.issuer)
    assert row_counts(app)["platforms"] == 0

    frame.locator("#register").click()
    expect(frame.locator("h1")).to_have_text("The live-class tool is registered")
    client_id = frame.locator("#client-id").inner_text()
    assert client_id in platform.registration_desk.tools
    expect(frame.locator("#deployment-id")).to_have_text("2")
    assert page.evaluate("() => window.received") == [], "the dialog stays until the administrator is done"

    frame.locator("#close-dialog").click()
    (message,) = messages_received(page)
    assert message == {"data": {"subject": "org.imsglobal.lti.close"}, "origin": tool.url, "fromTool": True}
    assert problems.items == []
    context.close()


def test_registration_in_a_tab_of_its_own_on_a_phone(browser, served):
    tool, platform, app = served
    context = browser.new_context(**PHONE)
    context.set_default_timeout(15_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(platform.activity_url(how="tab"))
    with context.expect_page() as opened:
        page.locator("#open-tool").click()
    tab = problems.watch(opened.value)
    expect(tab.locator("h1")).to_have_text("Register the live-class tool")
    register = tab.locator("#register")
    expect(register).to_be_visible()
    box = register.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 300, "a full-width button a thumb can hit"
    assert not scrolls_sideways(tab), "no sideways scrolling on a phone"

    register.tap()
    expect(tab.locator("h1")).to_have_text("The live-class tool is registered")
    assert not scrolls_sideways(tab), "long URLs and ids wrap"
    tab.locator("#close-dialog").tap()
    expect(tab.locator("#close-hint")).to_be_visible()
    (message,) = messages_received(page)
    assert message["data"] == {"subject": "org.imsglobal.lti.close"} and message["fromTool"]
    assert row_counts(app)["platforms"] == 1
    assert problems.items == []
    context.close()
