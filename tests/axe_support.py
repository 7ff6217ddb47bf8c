"""axe-core in the browser tests: the page (or a frame) checked for serious and critical
accessibility violations.

axe-core is a dev dependency in package.json (`npm ci` installs it into node_modules/; bin/test
does). AXE_CORE_JS names another copy. Without it the accessibility check alone is left out,
with a warning in the test report saying why; the rest of each test still runs. The script goes
in through Playwright's evaluate (the DevTools protocol), not a <script> element, so the page's
Content-Security-Policy stays in force while it is checked.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AXE_PATHS = [os.environ.get("AXE_CORE_JS", ""), str(ROOT / "node_modules" / "axe-core" / "axe.min.js")]
SERIOUS = ("serious", "critical")

RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: "
      + (n.failureSummary || "").replace(/\\s+/g, " "))}));
}"""


def axe_source() -> str | None:
    for path in AXE_PATHS:
        if path and Path(path).is_file():
            return Path(path).read_text()
    return None


def axe_problems(target) -> list[dict]:
    """The serious and critical violations axe-core finds in `target` (a page or a frame)."""
    if not target.evaluate("() => typeof window.axe === 'object'"):
        source = axe_source()
        if source is None:
            warnings.warn("axe-core is not installed (npm ci installs it into node_modules/, or set AXE_CORE_JS): "
                          "accessibility not checked", pytest.PytestWarning, stacklevel=2)
            return []
        target.evaluate(source + "\n;undefined")
    return [v for v in target.evaluate(RUN) if v["impact"] in SERIOUS]
