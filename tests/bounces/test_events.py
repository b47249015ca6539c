"""The bounce policy on real SQLite files, with the hand-written samples in samples/
(see its README): complaints, auto-replies, soft bounces, mailed unsubscribes, forged
tokens, `unsuppress`, and what `show`, `export`, `status` and `wipe` do with the events."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from digestd.bounces.events import handle_message, unsuppress
from digestd.config import BounceSettings, DigestSettings, MailSettings, Settings
from digestd.errors import ConfigError, NotFoundError
from digestd.mail.tokens import BOUNCE, UNSUBSCRIBE, TokenSigner
from digestd.models import Bounce, Delivery, Subscriber, Suppression
from digestd.records import ACTIVE, SUPPRESSED, UNSUBSCRIBED
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber, email_hash

SAMPLES = Path(__file__).resolve().parent / "samples"
SECRET = "bounce-test-secret-key-of-32-chars"
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
SETTINGS = Settings(
    mail=MailSettings(from_="Paper Digest <digest@digest.example.org>", bounce_address="bounces@digest.example.org"),
    bounces=BounceSettings(soft_limit=3, soft_days=7),
    secret_key=SECRET,
)
SIGNER = TokenSigner(SECRET)


def add_reader(engine: Engine, address: str = "ada@example.org") -> tuple[int, int, str]:
    """A subscriber with one sent digest: (subscriber id, delivery id, link key)."""
    with open_session(engine) as session:
        subscriber = add_subscriber(
            session, SubscriberInput(email=address, keywords="graphs"), defaults=DigestSettings(), now=NOW
        )
        assert subscriber.id is not None
        delivery = Delivery(
            subscriber_id=subscriber.id,
            period="2026-11-30",
            period_start=NOW - timedelta(days=9),
            period_end=NOW - timedelta(days=2),
            status="sent",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(delivery)
        session.flush()
        assert delivery.id is not None
        return subscriber.id, delivery.id, subscriber.link_key


def sample(name: str, delivery_id: int, link_key: str, *, copy: int = 0) -> bytes:
    """A sample with real return tokens; `copy` > 0 gives it another Message-ID (another report)."""
    text = (SAMPLES / name).read_text()
    if copy:
        text = re.sub(r"(?im)^(Message-Id: <)", rf"\g<1>{copy}.", text, count=1)
    text = text.replace("{token}", SIGNER.sign_return(BOUNCE, delivery_id, link_key))
    text = text.replace("{unsubscribe_token}", SIGNER.sign_return(UNSUBSCRIBE, delivery_id, link_key))
    return text.encode()


def state(engine: Engine, subscriber_id: int) -> tuple[str, bool, list[tuple[str, str]]]:
    """(status, on the suppression list, [(kind, status code)] of its events)."""
    with open_session(engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None
        suppressed = session.get(Suppression, email_hash(subscriber.email)) is not None
        events = session.scalars(select(Bounce).where(Bounce.subscriber_id == subscriber_id).order_by(Bounce.id))
        return subscriber.status, suppressed, [(e.kind, e.status) for e in events]


def handle(engine: Engine, raw: bytes, *, now: datetime = NOW) -> str:
    return handle_message(engine, SETTINGS, raw, source="maildir", now=now).kind


def test_an_arf_complaint_unsubscribes_and_suppresses_at_once(engine: Engine) -> None:
    sid, did, key = add_reader(engine)
    other = add_reader(engine, "bob@example.org")[0]
    assert handle(engine, sample("arf-complaint.eml", did, key)) == "complaint"
    assert state(engine, sid) == (SUPPRESSED, True, [("complaint", "")])
    with open_session(engine) as session:
        assert session.get(Subscriber, sid).unsubscribed_at is not None  # type: ignore[union-attr]
    assert state(engine, other) == (ACTIVE, False, [])  # nothing else changes


@pytest.mark.parametrize("name", ["auto-reply.eml", "vacation-no-header.eml", "delay-dsn.eml"])
def test_auto_replies_and_delay_warnings_change_nothing(engine: Engine, name: str) -> None:
    sid, did, key = add_reader(engine)
    assert handle(engine, sample(name, did, key)) == "ignored"
    assert state(engine, sid) == (ACTIVE, False, [])


def test_a_mailed_unsubscribe_unsubscribes_without_suppressing(engine: Engine) -> None:
    sid, did, key = add_reader(engine)
    assert handle(engine, sample("unsubscribe.eml", did, key)) == "unsubscribe"
    assert state(engine, sid) == (UNSUBSCRIBED, False, [("unsubscribe", "")])


def test_soft_bounces_suppress_after_the_limit_within_the_window(engine: Engine) -> None:
    sid, did, key = add_reader(engine)
    assert handle(engine, sample("soft-dsn.eml", did, key, copy=1), now=NOW - timedelta(days=8)) == "soft"  # too old
    assert handle(engine, sample("soft-dsn.eml", did, key, copy=2), now=NOW - timedelta(days=2)) == "soft"
    assert handle(engine, sample("soft-dsn.eml", did, key, copy=3), now=NOW - timedelta(days=1)) == "soft"
    assert state(engine, sid)[:2] == (ACTIVE, False)
    assert handle(engine, sample("soft-dsn.eml", did, key, copy=4)) == "soft"
    status, suppressed, events = state(engine, sid)
    assert (status, suppressed) == (SUPPRESSED, True)
    assert events == [("soft", "4.2.2")] * 4
    with open_session(engine) as session:
        last = session.scalars(select(Bounce).order_by(Bounce.id.desc())).first()  # type: ignore[union-attr]
        assert last is not None and last.action == "suppressed (3 soft bounces in 7 days)"
        assert last.diagnostic == "452 4.2.2 Mailbox full"


def test_the_same_message_read_twice_counts_once(engine: Engine) -> None:
    sid, did, key = add_reader(engine)
    soft = sample("soft-dsn.eml", did, key)
    assert handle(engine, soft) == "soft"
    assert handle(engine, soft, now=NOW + timedelta(minutes=5)) == "ignored"  # e.g. an IMAP flag that was not set
    assert state(engine, sid) == (ACTIVE, False, [("soft", "4.2.2")])


def test_a_forged_or_misused_token_changes_nothing_and_is_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    sid, did, key = add_reader(engine)
    forged = TokenSigner("another-secret-key-of-32-characters").sign_return(BOUNCE, did, key)
    complaint = sample("arf-complaint.eml", did, key)
    real = SIGNER.sign_return(UNSUBSCRIBE, did, key)
    caplog.set_level(logging.WARNING, logger="digestd.bounces.events")
    assert handle(engine, complaint.replace(real.encode(), forged.encode())) == "ignored"
    # a bounce token is not an unsubscribe token: the kinds are signed too
    bounce_token = SIGNER.sign_return(BOUNCE, did, key)
    unsubscribe = sample("unsubscribe.eml", did, key).replace(real.encode(), bounce_token.encode())
    assert handle(engine, unsubscribe) == "ignored"
    # a token for a delivery row that does not exist
    assert handle(engine, complaint.replace(f"+{did}-".encode(), b"+999-")) == "ignored"
    assert state(engine, sid) == (ACTIVE, False, [])
    assert sum("did not sign" in record.getMessage() for record in caplog.records) == 3


def test_a_report_without_a_token_is_ignored(engine: Engine) -> None:
    sid, did, key = add_reader(engine)
    raw = sample("soft-dsn.eml", did, key).replace(SIGNER.sign_return(BOUNCE, did, key).encode(), b"")
    assert handle(engine, raw.replace(b"bounces+@", b"bounces@")) == "ignored"
    assert handle(engine, b"\xff\xfe not a message at all") == "ignored"
    assert state(engine, sid) == (ACTIVE, False, [])


def test_bounce_address_is_needed_to_read_bounces(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="mail.bounce_address is not set"):
        handle_message(engine, Settings(secret_key=SECRET), b"Subject: x\r\n\r\n", source="pipe", now=NOW)


def test_unsuppress_lifts_a_suppression_and_restarts_the_soft_count(engine: Engine) -> None:
    sid, did, key = add_reader(engine)
    for copy in (1, 2, 3):
        handle(engine, sample("soft-dsn.eml", did, key, copy=copy), now=NOW - timedelta(hours=1))
    assert state(engine, sid)[:2] == (SUPPRESSED, True)
    with open_session(engine) as session:
        assert unsuppress(session, "ADA@example.org", now=NOW) == "active again"
        assert session.get(Subscriber, sid).next_due_at is not None  # type: ignore[union-attr]
    assert state(engine, sid)[:2] == (ACTIVE, False)
    handle(engine, sample("soft-dsn.eml", did, key, copy=4), now=NOW + timedelta(minutes=1))
    assert state(engine, sid)[:2] == (ACTIVE, False)  # one soft bounce since the lift, not four
    with open_session(engine) as session, pytest.raises(NotFoundError, match="not suppressed"):
        unsuppress(session, "ada@example.org", now=NOW)


def test_show_status_export_list_the_events_and_wipe_erases_them(engine: Engine, run) -> None:  # type: ignore[no-untyped-def]
    add_reader(engine, "bob@example.org")
    sid, did, key = add_reader(engine)
    handle(engine, sample("soft-dsn.eml", did, key))
    shown = run("subscribers", "show", "ada@example.org").output
    assert "bounces:" in shown and "soft 4.2.2 via maildir, counted: soft bounce 1 of 3 in 7 days" in shown
    events = json.loads(run("subscribers", "show", "ada@example.org", "--json").output)["bounces"]
    assert [(e["kind"], e["status"], e["diagnostic"]) for e in events] == [("soft", "4.2.2", "452 4.2.2 Mailbox full")]
    exported = {row["email"]: row for row in json.loads(run("subscribers", "export", "--format", "json").output)}
    assert [event["kind"] for event in exported["ada@example.org"]["bounces"]] == ["soft"]
    assert exported["bob@example.org"]["bounces"] == []
    assert "bounces:     1 soft" in run("status").output
    run("subscribers", "wipe", "ada@example.org", "--yes")
    with open_session(engine) as session:
        assert session.scalars(select(Bounce)).all() == []
    assert "bounces:" not in run("status").output


def test_bounces_read_on_stdin_and_unsuppress_from_the_cli(
    engine: Engine, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    sid, did, key = add_reader(engine)
    complaint = sample("arf-complaint.eml", did, key).decode()
    kept = run("bounces", "read", input=complaint)  # no mail.bounce_address, no secret key
    assert kept.exit_code == 75 and "stays with the mail server" in kept.output
    assert state(engine, sid) == (ACTIVE, False, [])
    monkeypatch.setenv("DIGESTD_MAIL_BOUNCE_ADDRESS", "bounces@digest.example.org")
    monkeypatch.setenv("DIGESTD_SECRET_KEY", SECRET)
    handled = run("bounces", "read", input=complaint)
    assert handled.exit_code == 0 and handled.output.startswith("complaint: unsubscribed and suppressed")
    ignored = run("bounces", "read", input=sample("auto-reply.eml", did, key).decode())
    assert ignored.exit_code == 0 and ignored.output.startswith("ignored: an auto-reply")
    assert state(engine, sid)[:2] == (SUPPRESSED, True)
    lifted = run("subscribers", "unsuppress", "ada@example.org")
    assert lifted.exit_code == 0 and "active again" in lifted.output
    assert state(engine, sid)[:2] == (ACTIVE, False)
    again = run("subscribers", "unsuppress", "ada@example.org")
    assert again.exit_code == 1 and "error: ada@example.org is not suppressed" in again.output


@pytest.mark.postgres
def test_the_policy_on_postgresql(postgres_url: str) -> None:
    from digestd.store import make_engine, migrate

    pg = make_engine(postgres_url)
    migrate(pg)
    try:
        ada, did, key = add_reader(pg)
        bob, bob_did, bob_key = add_reader(pg, "bob@example.org")
        assert handle(pg, sample("arf-complaint.eml", did, key)) == "complaint"
        for copy in (1, 2, 3):
            handle(pg, sample("soft-dsn.eml", bob_did, bob_key, copy=copy))
        assert state(pg, ada) == (SUPPRESSED, True, [("complaint", "")])
        assert state(pg, bob) == (SUPPRESSED, True, [("soft", "4.2.2")] * 3)
        with open_session(pg) as session:
            assert unsuppress(session, "bob@example.org", now=NOW) == "active again"
    finally:
        pg.dispose()


def test_scan_refuses_a_folder_that_is_not_a_maildir(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("bounces", "scan", "--maildir", str(tmp_path))
    assert result.exit_code == 2 and f"error: {tmp_path} is not a Maildir" in result.output
