"""The manage page: every profile field, input kept on an error, the next digest, the links
to past digests, and no 500 for any input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from starlette.testclient import TestClient
from web_support import SECRET, START, Clock, Outbox, csrf_of, make_settings

from digestd.config import DigestSettings
from digestd.mail.tokens import TokenSigner
from digestd.models import ProfileItem, Subscriber
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber
from digestd.web.app import create_app

SIGNER = TokenSigner(SECRET)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(make_settings(), engine, send_message=Outbox(), now=Clock())
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def path(engine: Engine) -> str:
    """The manage page of a weekly subscriber (Mondays 08:00 UTC) added on Saturday START."""
    with open_session(engine, immediate=True) as session:
        given = SubscriberInput(email="ada@example.org", keywords="graphs:2, diffusion", exclude="survey")
        subscriber = add_subscriber(session, given, defaults=DigestSettings(), now=START)
        session.flush()
        assert subscriber.id is not None
        return f"/manage/{SIGNER.sign_manage(subscriber.id, subscriber.link_key)}"


def field(page: str, name: str) -> str:
    found = re.search(rf'<input id="{name}" name="{name}"[^>]* value="([^"]*)"', page)
    assert found, name
    return unescape(found.group(1))


def items(engine: Engine) -> set[tuple[str, str, float]]:
    with open_session(engine) as session:
        return {(i.kind, i.value, i.weight) for i in session.scalars(select(ProfileItem))}


def form(client: TestClient, path: str, **changes: str) -> dict[str, object]:
    page = client.get(path).text
    data: dict[str, object] = {"csrf": csrf_of(client, path), "action": "save", "frequency": "weekly", "day": "mon",
                               "time": "08:00", "timezone": "UTC"}  # fmt: skip
    for name in ("name", "keywords", "exclude", "authors", "seeds", "max_papers"):
        data[name] = field(page, name)
    return data | changes


def test_an_error_keeps_what_the_visitor_typed(client: TestClient, engine: Engine, path: str) -> None:
    before = items(engine)
    page = client.post(path, data=form(client, path, keywords="transformers, attention", seeds="not-an-id"))
    assert page.status_code == 400 and "Please check the form" in page.text and "not-an-id" in page.text
    assert field(page.text, "keywords") == "transformers, attention"  # not reverted
    assert field(page.text, "seeds") == "not-an-id"  # not emptied
    assert items(engine) == before  # and nothing saved


def test_every_profile_field_is_offered_and_saved(client: TestClient, engine: Engine, path: str) -> None:
    page = client.get(path).text
    assert (field(page, "keywords"), field(page, "exclude"), field(page, "max_papers")) == ("graphs:2, diffusion",
                                                                                            "survey", "20")  # fmt: skip
    for label in ("Keywords", "Words to exclude", "Categories", "Authors to follow", "Seed papers", "How often",
                  "Day (weekly digests)", "Time of day", "Time zone", "Papers per digest, at most"):  # fmt: skip
        assert f"{label}</l" in page or f">{label} <" in page, label
    data = form(client, path, authors="Emmy Noether; Lovelace, Ada", max_papers="7", keywords="graphs:3")
    assert client.post(path, data=data).status_code == 303
    with open_session(engine) as session:
        assert session.scalars(select(Subscriber.max_papers)).one() == 7
    assert {("author", "Emmy Noether", 1.0), ("author", "Lovelace, Ada", 1.0), ("keyword", "graphs", 3.0)} <= items(
        engine
    )
    page = client.get(path).text
    assert (field(page, "authors"), field(page, "max_papers")) == ("Emmy Noether; Lovelace, Ada", "7")


@pytest.mark.parametrize("value", ["abc", "0", "201", "1.5", "1e400", "-3"])
def test_a_bad_number_of_papers_is_an_error_kept_on_the_page(client: TestClient, path: str, value: str) -> None:
    page = client.post(path, data=form(client, path, max_papers=value))
    assert page.status_code == 400 and "max papers" in page.text
    assert field(page.text, "max_papers") == value


def test_the_page_says_when_the_next_digest_comes_and_links_past_digests(client: TestClient, path: str) -> None:
    page = client.get(path).text
    assert "Your next digest is due on Monday 30 November 2026 at 08:00 (UTC)." in page
    assert client.post(path, data=form(client, path, timezone="Asia/Tokyo", time="09:30")).status_code == 303
    assert "Your next digest is due on Monday 30 November 2026 at 09:30 (JST)." in client.get(path).text
    client.post(path, data={"csrf": csrf_of(client, path), "action": "pause"})
    assert "No digest is planned while your subscription is not active." in client.get(path).text
    links = dict(re.findall(r'<a href="http://testserver(/(?:archive|feed)/[^"]+)">([^<]+)</a>', client.get(path).text))
    assert set(links.values()) == {"See your past digests", "your Atom feed"}
    for link in links:
        assert client.get(link).status_code == 200


def test_the_texts_match_the_digest(client: TestClient, path: str) -> None:
    page = client.get(path).text
    assert "thumbs" not in page and '"More like this" and "Less like this"' in unescape(page)


@pytest.mark.parametrize(
    "changes",
    [
        {"keywords": "k" * 3000},
        {"authors": "; ".join(["A" * 60] * 60)},
        {"seeds": " ".join(f"2401.{i:05d}" for i in range(400))},
        {"timezone": "Mars/Olympus"},
        {"timezone": "../../etc/passwd"},
        {"time": "\x00"},
        {"frequency": "hourly"},
        {"max_papers": "9" * 5000},
        {"category": "x" * 500},
        {"name": "\u202e" * 300},
    ],
)
def test_no_input_makes_a_500(client: TestClient, path: str, changes: dict[str, str]) -> None:
    response = client.post(path, data=form(client, path, **changes))
    assert response.status_code in (303, 400, 413), response.text[:300]


def test_a_huge_form_is_refused(client: TestClient, path: str) -> None:
    response = client.post(path, data=form(client, path, keywords="k" * 200_000))
    assert response.status_code == 413
