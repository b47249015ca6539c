"""Accessibility checks with axe-core (from the npm registry, pinned in package.json and
installed by `npm ci`, as `.ci/run` does) in a Playwright page.

`check_accessibility(page)` runs axe on the page as it is and fails the test on any
violation of serious or critical impact, naming the rule, the help page and the elements.
axe is injected through the DevTools protocol (`page.evaluate`), so the page's own
Content-Security-Policy stays on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from browser_support import need

AXE_SCRIPT = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")


@functools.cache
def axe_source() -> str:
    if not AXE_SCRIPT.exists():
        need(f"{AXE_SCRIPT} is missing (run `npm ci` in the repository)")
    return AXE_SCRIPT.read_text(encoding="utf-8")


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (all impacts)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    result = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    return list(result["violations"])


def describe(violations: Sequence[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
        lines.append(
            f"{violation['impact']}: {violation['id']} ({violation['help']}, {violation['helpUrl']}): {targets}"
        )
    return "\n".join(lines)


def check_accessibility(page: Any, *, impacts: Sequence[str] = FAILING_IMPACTS) -> None:
    """Fail unless axe finds no violation of these impacts on the page."""
    failing = [v for v in run_axe(page) if v.get("impact") in impacts]
    assert not failing, f"axe-core found accessibility problems on {page.url}:\n{describe(failing)}"
