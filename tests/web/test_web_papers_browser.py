"""The public paper page in headless Chromium: filter, search, the "more" of an abstract,
a phone and a desktop, light and dark; screenshots are kept for a reviewer.

The screenshots go to a temporary folder (its path is printed; pytest keeps the last
three runs' folders under its basetemp). Without chromium or playwright the test is
skipped, except under CI=true.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from test_web_papers import PAPERS
from web_support import Outbox, RunningWeb, make_settings

from digestd.store import open_session, save_papers

pytestmark = pytest.mark.slow


def test_the_public_page_filters_searches_and_fits_a_phone(
    browser: Any,
    engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from datetime import UTC, datetime

    with open_session(engine) as session:
        save_papers(session, PAPERS, now=datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    shots = tmp_path_factory.mktemp("screenshots")
    with RunningWeb(make_settings, engine, Outbox()) as web:
        context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(web.base_url + "/")
        assert page.locator("h1").inner_text() == "Papers of Monday, 30 November 2026"
        assert page.locator(".paper-title").count() == 3
        page.screenshot(path=str(shots / "papers-1280.png"), full_page=True)

        # "more" opens the rest of a long abstract, without JavaScript
        rest = page.get_by_text("The final sentence only shows after more.")
        assert not rest.is_visible()
        page.locator("summary", has_text="We study message passing").click()
        assert rest.is_visible()

        page.get_by_label("Category").select_option("cs.LG")
        page.get_by_role("button", name="Show papers").click()
        assert page.locator(".paper-title").all_inner_texts() == [
            "Graph Networks for Sparse Labels",
            "Diffusion Models for Galaxies",
        ]
        assert page.get_by_role("status").inner_text().startswith("2 of 3 papers in Machine Learning.")
        page.get_by_label("Search these papers").fill("galaxies")
        page.get_by_role("button", name="Show papers").click()
        assert page.locator(".paper-title").all_inner_texts() == ["Diffusion Models for Galaxies"]
        assert page.get_by_label("Category").input_value() == "cs.LG"  # the filter is kept with the search
        page.screenshot(path=str(shots / "papers-search-1280.png"), full_page=True)

        page.get_by_role("link", name="Show all").click()
        page.get_by_role("link", name="Older: 27 November 2026 →").click()
        assert page.locator(".paper-title").all_inner_texts() == ["An Older Paper on Quantum Codes"]
        page.get_by_role("link", name="Subscribe", exact=True).first.click()
        assert page.locator("h1").inner_text() == "Subscribe to the paper digest"
        page.screenshot(path=str(shots / "subscribe-1280.png"), full_page=True)
        context.close()

        for scheme in ("light", "dark"):
            phone = browser.new_context(viewport={"width": 375, "height": 740}, color_scheme=scheme)
            page = phone.new_page()
            for name, path in (("papers", "/"), ("subscribe", "/subscribe")):
                page.goto(web.base_url + path)
                assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
                page.screenshot(path=str(shots / f"{name}-375-{scheme}.png"), full_page=True)
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert (background == "rgb(18, 20, 23)") == (scheme == "dark")
            phone.close()
    taken = sorted(path.name for path in shots.iterdir())
    assert len(taken) == 7, taken
    print(f"\nscreenshots: {shots}")  # noqa: T201 (for the reviewer, shown with -s)
