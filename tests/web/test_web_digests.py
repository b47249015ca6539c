"""Past digests on the web: the email's "View in your browser" page, the archive, the Atom feed.

The digests are sent for real (`send_due` to an aiosmtpd sink), so the pages are checked
against the very message that arrived.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import feedparser
import pytest
from sent_digests import send_digest
from sqlalchemy import Engine, update
from sqlmodel import col, delete
from starlette.testclient import TestClient
from web_support import SECRET, START, Clock, Outbox, RecordingHandler, csrf_of, make_settings

from digestd.config import DigestSettings, SmtpSettings
from digestd.mail.tokens import TokenSigner
from digestd.models import Delivery, Subscriber
from digestd.store import make_engine, migrate, open_session
from digestd.subscribers import SubscriberInput, add_subscriber
from digestd.web.app import create_app

SIGNER = TokenSigner(SECRET)
DUE = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # ada's first Monday digest (added on START, a Saturday)
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(make_settings(), engine, send_message=Outbox(), now=Clock(DUE + timedelta(hours=1)))
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def ada(engine: Engine) -> Subscriber:
    with open_session(engine, immediate=True) as session:
        given = SubscriberInput(email="ada@example.org", keywords="graph neural networks, diffusion models")
        subscriber = add_subscriber(session, given, defaults=DigestSettings(), now=START)
        session.flush()
        session.expunge(subscriber)
        return subscriber


def sent_message(engine: Engine, sink: tuple[RecordingHandler, SmtpSettings], due: datetime = DUE, **kw: Any) -> Any:
    report = send_digest(engine, make_settings(), sink[1], due=due, **kw)
    assert report.sent == 1
    return sink[0].messages[-1]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def view_link(message: EmailMessage) -> str:
    text, html = parts(message)
    found = re.search(r"View in your browser: (\S+)", text)
    assert found, text
    assert f'href="{found.group(1)}"' in html  # the HTML part has the same link
    return path_of(found.group(1))


def test_view_in_browser_shows_the_digest_as_mailed(
    client: TestClient, engine: Engine, ada: Subscriber, sink: tuple[RecordingHandler, SmtpSettings]
) -> None:
    message = sent_message(engine, sink)
    text, html = parts(message)
    page = client.get(view_link(message))
    assert page.status_code == 200, page.text
    assert "<h1>Your paper digest, 30 Nov 2026</h1>" in page.text
    # the mail's HTML is folded into short lines (RFC 5322), a title may hold a line break
    mailed_titles = [" ".join(t.split()) for t in re.findall(r'<h3 class="title"[^>]*><a [^>]*>([^<]+)</a>', html)]
    shown_titles = [" ".join(t.split()) for t in re.findall(r"<h3><a [^>]*>([^<]+)</a>", page.text)]
    assert mailed_titles and shown_titles == mailed_titles  # the same papers, in the same order

    def reasons(page_html: str) -> list[str]:
        return [" ".join(why.split()) for why in re.findall(r"Why: ([^<]+)</p>", page_html)]

    assert reasons(page.text) == reasons(html)
    mailed_rates = re.findall(r'href="([^"]+/rate/[^"]+)"', html)
    assert len(mailed_rates) == 2 * len(mailed_titles)
    assert re.findall(r'href="([^"]+/rate/[^"]+)"', page.text) == mailed_rates  # the same rating links
    rate = client.get(path_of(mailed_rates[0]))
    assert rate.status_code == 200 and "More papers like this?" in rate.text
    rated = client.post(path_of(mailed_rates[0]), data={"csrf": csrf_of(client, path_of(mailed_rates[0]))})
    assert rated.status_code == 200 and "Thank you" in rated.text
    assert "/manage/" not in rated.text  # a rating link, which a feed reader may hold, opens no profile


def test_a_digest_sent_before_sections_were_kept_shows_its_papers(
    client: TestClient, engine: Engine, ada: Subscriber, sink: tuple[RecordingHandler, SmtpSettings]
) -> None:
    """Before revision 0010 (None), or a value edited by hand: the papers, as one list."""
    message = sent_message(engine, sink)
    for kept in (None, {"label": "x"}, [1, 2], "text", [{"label": "no papers"}]):
        with open_session(engine, immediate=True) as session:
            session.execute(update(Delivery).values(sections=kept))
        page = client.get(view_link(message))
        assert page.status_code == 200, kept
        assert len(re.findall(r'<article class="pick">', page.text)) == len(re.findall(r"/rate/", page.text)) // 2 > 0
        assert "Why:" not in page.text  # reasons were not kept then


def test_the_archive_lists_past_digests_newest_first(
    client: TestClient, engine: Engine, ada: Subscriber, sink: tuple[RecordingHandler, SmtpSettings]
) -> None:
    assert ada.id is not None
    archive = f"/archive/{SIGNER.sign_archive(ada.id, ada.link_key)}"
    assert "No digest has been sent yet" in client.get(archive).text
    first = sent_message(engine, sink)
    second = sent_message(engine, sink, DUE + timedelta(days=7), prefix="2612")
    page = client.get(archive)
    assert page.status_code == 200
    listed = re.findall(r'<li><a href="([^"]+)">([^<]+)</a>: (\d+) papers?</li>', page.text)
    assert [(path_of(url), day) for url, day, _ in listed] == [
        (view_link(second), "7 Dec 2026"),
        (view_link(first), "30 Nov 2026"),
    ]
    assert client.get(path_of(listed[1][0])).status_code == 200
    assert f'href="http://testserver/feed/{archive.removeprefix("/archive/")}.atom"' in page.text


def check_rfc4287(document: bytes) -> None:
    """The elements RFC 4287 requires (4.1.1, 4.1.2): feed id, title, updated, an author on
    the feed or on every entry; per entry id, title, updated, and content or an alternate link."""
    root = ET.fromstring(document)
    assert root.tag == f"{ATOM}feed"
    for element in (root, *root.findall(f"{ATOM}entry")):
        for name in ("id", "title", "updated"):
            found = element.findall(f"{ATOM}{name}")
            assert len(found) == 1 and (found[0].text or "").strip(), (element.tag, name)
        updated = element.findtext(f"{ATOM}updated") or ""
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)", updated), updated
        assert re.match(r"[a-z][a-z0-9+.-]*:", element.findtext(f"{ATOM}id") or "")  # an IRI
    assert root.find(f"{ATOM}author/{ATOM}name") is not None
    assert any(link.get("rel") == "self" for link in root.findall(f"{ATOM}link"))
    for entry in root.findall(f"{ATOM}entry"):
        alternate = [link for link in entry.findall(f"{ATOM}link") if link.get("rel", "alternate") == "alternate"]
        assert entry.find(f"{ATOM}content") is not None or alternate


def test_the_atom_feed_is_valid_and_links_each_digest(
    client: TestClient, engine: Engine, ada: Subscriber, sink: tuple[RecordingHandler, SmtpSettings]
) -> None:
    assert ada.id is not None
    feed_path = f"/feed/{SIGNER.sign_archive(ada.id, ada.link_key)}.atom"
    empty = client.get(feed_path)
    assert empty.status_code == 200 and empty.headers["content-type"].startswith("application/atom+xml")
    check_rfc4287(empty.content)
    first = sent_message(engine, sink)
    second = sent_message(engine, sink, DUE + timedelta(days=7), prefix="2612")
    response = client.get(feed_path)
    check_rfc4287(response.content)
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "atom10"
    assert [path_of(entry.link) for entry in parsed.entries] == [view_link(second), view_link(first)]
    assert parsed.entries[1].title == first["Subject"]
    assert "Why: matched" in parsed.entries[1].content[0].value  # the digest itself, with its reasons
    assert {(link.rel, path_of(link.href)) for link in parsed.feed.links} >= {("self", feed_path)}
    again = feedparser.parse(client.get(feed_path).content)
    assert [e.id for e in again.entries] == [e.id for e in parsed.entries]  # ids are stable
    assert len({e.id for e in parsed.entries}) == 2 and all(e.id.startswith("urn:uuid:") for e in parsed.entries)


def test_damaged_or_foreign_links_are_clear_pages_never_a_500(
    client: TestClient, engine: Engine, ada: Subscriber, sink: tuple[RecordingHandler, SmtpSettings]
) -> None:
    assert ada.id is not None
    message = sent_message(engine, sink)
    view = view_link(message).removeprefix("/view/")
    archive = SIGNER.sign_archive(ada.id, ada.link_key)
    manage = SIGNER.sign_manage(ada.id, ada.link_key)
    bad_tokens = ["garbage", "", ".", "x" * 20_000, "%00%ff", "%E2%80%AE%00", view[:-3], view + "AA", manage]
    for kind, good in (("view", view), ("archive", archive), ("feed", archive)):
        for token in [*bad_tokens, archive if kind == "view" else view]:
            suffix = ".atom" if kind == "feed" else ""
            response = client.get(f"/{kind}/{token}{suffix}")
            assert response.status_code in (400, 404, 405), (kind, token[:40], response.status_code)
            assert "Traceback" not in response.text
        assert client.get(f"/{kind}/{good}{'.atom' if kind == 'feed' else ''}").status_code == 200
        assert client.post(f"/{kind}/{good}{'.atom' if kind == 'feed' else ''}").status_code == 405
    no_digest = client.get(f"/view/{SIGNER.sign_view(ada.id, ada.link_key, '2026-12-07')}")
    assert no_digest.status_code == 404 and "no digest for this link" in no_digest.text
    with open_session(engine, immediate=True) as session:
        session.execute(delete(Delivery))
        session.execute(delete(Subscriber).where(col(Subscriber.id) == ada.id))
    for path in (f"/view/{view}", f"/archive/{archive}", f"/feed/{archive}.atom"):
        assert client.get(path).status_code == 404  # removed: the links open nothing


@pytest.mark.postgres
def test_view_archive_and_feed_on_postgresql(postgres_url: str, sink: tuple[RecordingHandler, SmtpSettings]) -> None:
    engine = make_engine(postgres_url)
    try:
        migrate(engine)
        with open_session(engine, immediate=True) as session:
            given = SubscriberInput(email="ada@example.org", keywords="graph neural networks, diffusion models")
            ada = add_subscriber(session, given, defaults=DigestSettings(), now=START)
            assert ada.id is not None
            archive = SIGNER.sign_archive(ada.id, ada.link_key)
        message = sent_message(engine, sink)
        app = create_app(make_settings(), engine, send_message=Outbox(), now=Clock(DUE + timedelta(hours=1)))
        with TestClient(app, follow_redirects=False) as client:
            page = client.get(view_link(message))
            assert page.status_code == 200 and "Why: matched" in page.text
            assert re.findall(r'href="([^"]+/rate/[^"]+)"', page.text) == re.findall(
                r'href="([^"]+/rate/[^"]+)"', parts(message)[1]
            )
            assert "30 Nov 2026</a>: " in client.get(f"/archive/{archive}").text
            feed = client.get(f"/feed/{archive}.atom")
            check_rfc4287(feed.content)
            assert [path_of(e.link) for e in feedparser.parse(feed.content).entries] == [view_link(message)]
    finally:
        engine.dispose()
