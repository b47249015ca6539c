"""Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright (never
`playwright install`: it downloads browsers). Without them the tests are skipped, except
under CI=true, where they fail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def need(reason: str) -> None:
    """Skip for `reason`, or fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; the browser tests must run under CI=true")
    pytest.skip(reason)


def launch_chromium() -> Iterator[Any]:
    """A headless Chromium, for a module-scoped fixture."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("playwright is not installed (pip install playwright; never `playwright install`)")
    if not CHROMIUM.exists():
        need(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
