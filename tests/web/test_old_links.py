"""Old links die with the record they were made for: ids are never reused, tokens are bound
to the subscriber (a random link key in the signature), on SQLite files and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import Engine, update
from sqlmodel import col
from starlette.testclient import TestClient
from web_support import SECRET, START, Clock, Outbox, make_settings, old_token

from digestd.api import preview_digest
from digestd.config import DigestSettings
from digestd.demo import SAMPLE_PAPERS
from digestd.ingest.run import ingest_file
from digestd.mail.render import make_email_builder
from digestd.models import ProfileItem, Subscriber
from digestd.records import ACTIVE, KEYWORD, PENDING, UNSUBSCRIBED
from digestd.store import make_engine, migrate, open_session
from digestd.subscribers import SubscriberInput, add_subscriber, remove_subscriber, wipe_subscriber
from digestd.web.app import create_app
from digestd.web.signup import purge_unconfirmed


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Engine]:
    """A real SQLite file or a real PostgreSQL database, migrated to head."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else sqlite_url
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def add(engine: Engine, email: str, *, status: str = ACTIVE) -> int:
    with open_session(engine) as session:
        given = SubscriberInput(email=email, keywords="surface code", status=status)
        subscriber_id = add_subscriber(session, given, defaults=DigestSettings(), now=START).id
    assert subscriber_id is not None
    return subscriber_id


def links_in_a_digest(engine: Engine, email: str) -> dict[str, str]:
    """The manage, unsubscribe and a rate link of a real digest for `email`, by kind."""
    digest = preview_digest(engine, email, now=START, since=START.date().replace(day=1))
    assert digest.picks
    built = make_email_builder(make_settings().mail, secret_key=SECRET).build(digest, period="2026-11-30", now=START)
    html = message_from_bytes(built.data, policy=policy.default).get_body(("html",)).get_content()  # type: ignore[union-attr]
    return {m.group(1): m.group(0) for m in re.finditer(r"/(rate|manage|unsubscribe)/[A-Za-z0-9_\-.]+", html)}


def remove(engine: Engine, email: str) -> None:
    with open_session(engine) as session:
        remove_subscriber(session, email)


def wipe(engine: Engine, email: str) -> None:
    with open_session(engine) as session:
        wipe_subscriber(session, email, now=START)


def purge(engine: Engine, email: str) -> None:
    with open_session(engine) as session:
        session.execute(update(Subscriber).where(col(Subscriber.email) == email).values(status=PENDING))
    with open_session(engine) as session:
        assert purge_unconfirmed(session, START.replace(year=2027)) == 1


@pytest.mark.parametrize("leave", [remove, wipe, purge], ids=["remove", "wipe", "purge"])
def test_an_old_link_never_reaches_the_next_subscriber(store: Engine, leave: Callable[[Engine, str], None]) -> None:
    ingest_file(store, SAMPLE_PAPERS, now=START)
    add(store, "ada@example.org")
    bob = add(store, "bob@example.org")
    old = links_in_a_digest(store, "bob@example.org")
    leave(store, "bob@example.org")
    carol = add(store, "carol@example.org")

    client = TestClient(create_app(make_settings(), store, send_message=Outbox(), now=Clock()), follow_redirects=False)
    for kind in ("manage", "rate"):
        page = client.get(old[kind])
        assert page.status_code == 404 and "carol" not in page.text, (kind, page.status_code)
    unsubscribed = client.post(old["unsubscribe"], data={"List-Unsubscribe": "One-Click"})
    assert unsubscribed.status_code == 200  # nothing left to stop: RFC 8058 wants a plain 200
    with open_session(store) as session:
        assert session.get(Subscriber, carol).status == ACTIVE  # type: ignore[union-attr]
    assert carol > bob  # ids are never handed out twice


def test_a_link_is_bound_to_the_record_it_was_made_for(engine: Engine) -> None:
    """A record made again under the same id (a restored backup, an old database whose ids
    were reused before the upgrade) does not answer to the old record's links."""
    ingest_file(engine, SAMPLE_PAPERS, now=START)
    bob = add(engine, "bob@example.org")
    old = links_in_a_digest(engine, "bob@example.org")
    remove(engine, "bob@example.org")
    with open_session(engine) as session:  # the same id as the old record, as a restore would give it
        session.add(Subscriber(id=bob, email="carol@example.org", created_at=START, next_due_at=START))
        session.flush()
        session.add(ProfileItem(subscriber_id=bob, kind=KEYWORD, value="surface code"))
    client = TestClient(create_app(make_settings(), engine, send_message=Outbox(), now=Clock()), follow_redirects=False)
    for kind, path in old.items():
        page = client.get(path)
        assert page.status_code == 400 and "carol" not in page.text, kind
    fresh = links_in_a_digest(engine, "carol@example.org")
    assert client.get(fresh["manage"]).status_code == 200


def test_unsubscribe_links_mailed_before_the_upgrade_work_for_30_days_manage_links_not(engine: Engine) -> None:
    ada, bob = add(engine, "ada@example.org"), add(engine, "bob@example.org")
    with open_session(engine) as session:  # what migration 0006 sets on the subscribers it finds
        session.execute(update(Subscriber).values(legacy_links_until=START + timedelta(days=30)))
    clock = Clock()
    client = TestClient(create_app(make_settings(), engine, send_message=Outbox(), now=clock), follow_redirects=False)
    assert client.get(f"/manage/{old_token(SECRET, 'manage', ada)}").status_code == 400
    one_click = {"List-Unsubscribe": "One-Click"}
    assert client.post(f"/unsubscribe/{old_token(SECRET, 'unsubscribe', ada)}", data=one_click).status_code == 200
    clock.advance(days=30)
    assert client.post(f"/unsubscribe/{old_token(SECRET, 'unsubscribe', bob)}", data=one_click).status_code == 400
    with open_session(engine) as session:
        assert session.get(Subscriber, ada).status == UNSUBSCRIBED  # type: ignore[union-attr]
        assert session.get(Subscriber, bob).status == ACTIVE  # type: ignore[union-attr]
