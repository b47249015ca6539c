"""Browser tests: a person subscribes, confirms, manages and leaves in headless Chromium.

The real app runs under uvicorn on loopback, confirmation mail goes through the real
SMTP sender to a real aiosmtpd sink, and Debian's chromium is driven by Playwright.
Without chromium or playwright these tests are skipped, except under CI=true.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from web_support import SECRET, RecordingHandler, RunningWeb, queue_done

from digestd.config import SmtpSettings
from digestd.mail.tokens import TokenSigner
from digestd.models import ProfileItem, Subscriber
from digestd.records import ACTIVE, PAUSED, PENDING, UNSUBSCRIBED
from digestd.store import open_session

pytestmark = pytest.mark.slow


def load(engine: Engine, email: str = "ada@example.org") -> tuple[Subscriber | None, set[tuple[str, str]]]:
    with open_session(engine) as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        items = set()
        if found is not None:
            session.expunge(found)
            rows = session.scalars(select(ProfileItem).where(ProfileItem.subscriber_id == found.id))
            items = {(item.kind, item.value) for item in rows}
        return found, items


def link_in(message: Any, kind: str) -> str:
    match = re.search(rf"(http://127\.0\.0\.1:\d+/{kind}/\S+)", message.get_content())
    assert match, message.get_content()
    return match.group(1)


def test_subscribe_confirm_manage_and_leave_in_a_browser(
    browser: Any, web: RunningWeb, engine: Engine, sink: tuple[RecordingHandler, SmtpSettings]
) -> None:
    handler = sink[0]
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB")
    page = context.new_page()

    page.goto(web.base_url + "/subscribe")
    assert page.locator("h1").inner_text() == "Subscribe to the paper digest"
    assert page.locator("#timezone").input_value() == "Europe/Berlin"  # preselected from the browser
    page.get_by_label("Email address").fill("ada@example.org")
    page.get_by_label("Your name").fill("Ada")
    page.get_by_label("Keywords").fill("graph neural networks, diffusion models")
    page.get_by_label("cs.LG").check()
    page.get_by_label("How often").select_option("daily")
    page.get_by_label("Time of day").fill("07:30")
    page.get_by_role("button", name="Subscribe").click()
    assert page.locator("h1").inner_text() == "Check your inbox"
    queue_done(engine)  # the sign-up is recorded after the answer
    subscriber, items = load(engine)
    assert subscriber is not None and subscriber.status == PENDING
    assert (subscriber.timezone, subscriber.frequency, subscriber.send_time) == ("Europe/Berlin", "daily", "07:30")
    assert {("keyword", "graph neural networks"), ("category", "cs.LG")} <= items

    (message,) = handler.wait_for(1)
    assert message["To"] == "ada@example.org"
    page.goto(link_in(message, "confirm"))
    assert load(engine)[0].status == PENDING  # type: ignore[union-attr]  # opening the link is not enough
    page.get_by_role("button", name="Confirm my subscription").click()
    assert page.locator("h1").inner_text() == "You are subscribed"
    assert load(engine)[0].status == ACTIVE  # type: ignore[union-attr]

    page.get_by_role("link", name="Change your interests or schedule").click()
    assert page.locator("h1").inner_text() == "Your paper digest"
    assert page.get_by_label("Keywords").input_value() == "graph neural networks, diffusion models"
    page.get_by_label("Keywords").fill("transformers, attention")
    page.get_by_label("cs.LG").uncheck()
    page.get_by_label("cs.CL").check()
    page.get_by_role("button", name="Save changes").click()
    assert "Your interests and schedule are saved." in page.get_by_role("status").inner_text()
    assert page.get_by_label("Keywords").input_value() == "transformers, attention"
    items = load(engine)[1]
    assert {("keyword", "transformers"), ("keyword", "attention"), ("category", "cs.CL")} <= items
    assert ("category", "cs.LG") not in items and ("keyword", "diffusion models") not in items

    page.get_by_role("button", name="Pause my digest").click()
    assert page.locator("#status").inner_text() == "paused"
    assert load(engine)[0].status == PAUSED  # type: ignore[union-attr]

    found = load(engine)[0]
    assert found is not None and found.id is not None
    page.goto(f"{web.base_url}/unsubscribe/{TokenSigner(SECRET).sign_unsubscribe(found.id, found.link_key)}")
    assert load(engine)[0].status == PAUSED  # type: ignore[union-attr]  # the page alone changes nothing
    page.get_by_role("button", name="Unsubscribe").click()
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    assert load(engine)[0].status == UNSUBSCRIBED  # type: ignore[union-attr]
    context.close()


def test_the_form_works_without_javascript(browser: Any, web: RunningWeb, engine: Engine) -> None:
    context = browser.new_context(
        java_script_enabled=False, timezone_id="Asia/Tokyo", viewport={"width": 360, "height": 740}
    )
    page = context.new_page()
    page.goto(web.base_url + "/subscribe")
    assert page.locator("#timezone").input_value() == "UTC"  # the server's default, no script ran
    page.get_by_label("Email address").fill("bob@example.org")
    page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("alert").inner_text().startswith("Please check the form")  # no interests yet
    assert page.get_by_label("Email address").input_value() == "bob@example.org"  # kept
    page.get_by_label("stat.ML").check()
    page.get_by_role("button", name="Subscribe").click()
    assert page.locator("h1").inner_text() == "Check your inbox"
    queue_done(engine)
    subscriber, _ = load(engine, "bob@example.org")
    assert subscriber is not None and subscriber.timezone == "UTC" and subscriber.status == PENDING
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360  # no sideways scrolling on a phone
    context.close()
