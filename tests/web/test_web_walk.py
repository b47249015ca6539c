"""The whole walk in Chromium: the public paper page and its filter, subscribe, confirm, manage
(an error keeps the input), then a digest sent for real, viewed in the browser, the archive
and the Atom feed.

Each page is checked with axe-core (no serious or critical violation) and photographed at
1280 and 375 pixels wide into a temporary folder, named on the terminal, for a reviewer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from axe import check_accessibility
from sent_digests import send_digest
from sqlalchemy import Engine
from sqlmodel import select
from web_support import RecordingHandler, RunningWeb, queue_done

from digestd.config import SmtpSettings
from digestd.demo import SAMPLE_PAPERS
from digestd.ingest.run import ingest_file
from digestd.models import Subscriber
from digestd.store import open_session
from digestd.web.digests import as_utc

pytestmark = pytest.mark.slow

WIDTHS = (1280, 375)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # on the terminal even when output is captured
            reporter.write_line(f"\nbrowser walk: screenshots in {folder}")
    return folder


def look_at(page: Any, folder: Path, name: str) -> None:
    """Check the page with axe, then photograph it at each width (the whole page)."""
    check_accessibility(page)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways at {width}"
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def link_in(message: Any, kind: str) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(rf"(http://127\.0\.0\.1:\d+/{kind}/\S+)", text)
    assert match, text
    return match.group(1)


def test_subscribe_manage_and_read_digests_on_the_web(
    browser: Any, web: RunningWeb, engine: Engine, sink: tuple[RecordingHandler, SmtpSettings], screenshots: Path
) -> None:
    handler = sink[0]
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()

    ingest_file(engine, SAMPLE_PAPERS, now=datetime.now(UTC))  # what the public page lists
    page.goto(web.base_url + "/")
    everything = page.locator("li.card").count()  # the sample's latest day, 2026-11-21: 5 papers
    assert everything > 1, page.content()[:2000]
    look_at(page, screenshots, "00-papers")
    page.get_by_label("Category").select_option("quant-ph")
    page.get_by_role("button", name="Show papers").click()
    chosen = page.locator("li.card")
    assert 0 < chosen.count() < everything
    assert all("Quantum Physics" in text for text in chosen.all_inner_texts())  # categories by name
    look_at(page, screenshots, "00-papers-filtered")
    page.get_by_role("link", name="Subscribe").first.click()
    assert page.url.endswith("/subscribe")
    look_at(page, screenshots, "01-subscribe")
    page.get_by_label("Email address").fill("ada@example.org")
    page.get_by_label("Keywords").fill("graph neural networks, diffusion models")
    page.get_by_role("button", name="Subscribe").click()
    assert page.locator("h1").inner_text() == "Check your inbox"
    look_at(page, screenshots, "02-check-inbox")
    queue_done(engine)

    (confirmation,) = handler.wait_for(1)
    page.goto(link_in(confirmation, "confirm"))
    look_at(page, screenshots, "03-confirm")
    page.get_by_role("button", name="Confirm my subscription").click()
    assert page.locator("h1").inner_text() == "You are subscribed"
    look_at(page, screenshots, "04-subscribed")

    page.get_by_role("link", name="Change your interests or schedule").click()
    assert page.locator("h1").inner_text() == "Your paper digest"
    assert "Your next digest is due on" in page.locator("#next-due").inner_text()
    look_at(page, screenshots, "05-manage")
    page.get_by_label("Keywords").fill("graph neural networks:2, diffusion models, protein folding")
    page.locator("#seeds").fill("not-an-id")
    page.get_by_role("button", name="Save changes").click()
    assert page.get_by_role("alert").inner_text().startswith("Please check the form")
    assert page.get_by_label("Keywords").input_value() == "graph neural networks:2, diffusion models, protein folding"
    assert page.locator("#seeds").input_value() == "not-an-id"  # kept, to correct
    look_at(page, screenshots, "06-manage-error")
    page.locator("#seeds").fill("")
    page.get_by_label("Authors to follow").fill("Ada Lovelace")
    page.get_by_role("button", name="Save changes").click()
    assert "are saved" in page.get_by_role("status").inner_text()

    with open_session(engine) as session:
        subscriber = session.scalars(select(Subscriber)).one()
        due = as_utc(subscriber.next_due_at) if subscriber.next_due_at else None
    assert due is not None
    assert send_digest(engine, web.settings, sink[1], due=due).sent == 1
    digest = handler.wait_for(2)[-1]
    page.goto(link_in(digest, "view"))
    assert page.locator("h1").inner_text().startswith("Your paper digest, ")
    titles = page.locator("article.pick h3").all_inner_texts()
    html = " ".join(digest.get_body(("html",)).get_content().split())  # its lines are broken at spaces
    assert titles and all(title in html for title in titles)
    assert page.get_by_role("link", name="More like this").count() == len(titles)
    look_at(page, screenshots, "07-view-digest")
    view_url = page.url
    page.get_by_role("link", name="More like this").first.click()
    assert page.locator("h1").inner_text() == "More papers like this?"
    page.get_by_role("button", name="Yes, more like this").click()
    assert page.locator("h1").inner_text() == "Thank you"
    look_at(page, screenshots, "07-rated")
    page.goto(view_url[:-6])  # a damaged link: a clear page, and still accessible
    assert page.locator("h1").inner_text() == "This link does not work"
    look_at(page, screenshots, "07-damaged-link")
    page.goto(view_url)

    page.get_by_role("link", name="All your past digests").click()
    assert page.locator("h1").inner_text() == "Your past digests"
    assert page.locator("ul.archive li").count() == 1
    look_at(page, screenshots, "08-archive")

    feed_url = page.get_by_role("link", name="your Atom feed").get_attribute("href")
    response = page.goto(feed_url)
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(response.body())
    assert not parsed.bozo and parsed.version == "atom10"
    assert [entry.link for entry in parsed.entries] == [link_in(digest, "view")]
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(screenshots / f"09-feed-{width}.png"), full_page=True)
    context.close()


def test_the_accessibility_check_fails_on_a_serious_problem(browser: Any) -> None:
    page = browser.new_page()
    page.set_content('<!doctype html><html lang="en"><title>t</title><main><img src="x.png"><button></button></main>')
    with pytest.raises(AssertionError, match="image-alt|button-name"):
        check_accessibility(page)
    page.close()
