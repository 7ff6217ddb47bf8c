"""What every headless-Chromium test module shares: the skip when Debian's Chromium or
Playwright is missing, the launch flags and the fake LMS course page. (The `browser` fixture
is in conftest.py.)

A test module imports from here first; the import skips the whole module when no browser is
available (a module-level skip raised while the module is being collected).
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = sync_api.expect

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # Without these Chromium reaches for Google's hosts, which this network refuses.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # No real devices or prompts in CI: fake camera and microphone if anything asks.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]


def course_page(tool_url: str, fields: dict, extra_script: str = "") -> bytes:
    """A Moodle-like activity page: the tool in an iframe, launched by an auto-submitted
    OIDC login form — exactly how Moodle embeds an LTI tool."""
    inputs = "\n".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">' for k, v in fields.items()
    )
    extra = f"<script>{extra_script}</script>\n" if extra_script else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>LTI Live 101: LTI Live Activity</title>
<style>body{{margin:0;font-family:sans-serif}} h1{{font-size:1.2rem;margin:.5rem}}
iframe{{display:block;width:100%;height:600px;border:0}}</style></head>
<body><h1>LTI Live Activity</h1>
<form id="launch" action="{html.escape(tool_url)}/lti/login" method="post" target="tool">
{inputs}
</form>
<iframe name="tool" title="LTI Live Activity" allow="camera; microphone; display-capture"></iframe>
{extra}<script>document.getElementById("launch").submit();</script>
</body></html>""".encode()

# The tool's room page, as the course page's iframe shows it after a launch.
ROOM_URL = re.compile(r"/rooms/\d+\?t=")


@dataclass
class Problems:
    """What a page must not show: console errors, uncaught exceptions, failed responses."""

    items: list = field(default_factory=list)

    def watch(self, page):
        page.on("console", lambda m: m.type == "error" and self.items.append(f"console: {m.text} {m.location}"))
        page.on("pageerror", lambda e: self.items.append(f"pageerror: {e}"))
        page.on("response", lambda r: r.status >= 400 and self.items.append(f"HTTP {r.status} {r.url}"))
        return page
