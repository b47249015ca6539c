"""The ledger without SMTP: idempotent planning, leases, and the CLI's dry run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from seeds import DUE, seed_database
from sqlalchemy import Engine
from sqlmodel import select

from digestd.cli import cli
from digestd.delivery.claims import claim_deliveries, mark_sending
from digestd.delivery.ledger import CLAIMED, PENDING, UNKNOWN, expire_leases, plan_deliveries
from digestd.models import Delivery
from digestd.store import open_session
from digestd.subscribers import list_subscribers

LATER = DUE + timedelta(minutes=1)
LEASE = timedelta(minutes=10)


def rows(engine: Engine) -> list[Delivery]:
    with open_session(engine) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_planning_twice_inserts_nothing_new(engine: Engine) -> None:
    seed_database(engine, subscribers=3)
    for _ in range(2):
        with open_session(engine, immediate=True) as session:
            plan_deliveries(session, now=LATER, subscribers=list_subscribers(session), forced=False)
    with open_session(
        engine, immediate=True
    ) as session:  # even with next_due_at put back, as a second node would see it
        subscribers = list_subscribers(session)
        for subscriber in subscribers:
            subscriber.next_due_at = DUE
        assert plan_deliveries(session, now=LATER, subscribers=subscribers, forced=False) == 0
    assert [(r.period, r.status, r.period_end) for r in rows(engine)] == [("2026-11-30", PENDING, LATER)] * 3


def test_expired_leases_return_claimed_rows_and_make_sending_rows_unknown(engine: Engine) -> None:
    seed_database(engine, subscribers=2)
    with open_session(engine, immediate=True) as session:
        plan_deliveries(session, now=LATER, subscribers=list_subscribers(session), forced=False)
        claims, skipped = claim_deliveries(session, worker="other-host:1:x", now=LATER, lease=LEASE, limit=10)
        assert (len(claims), skipped) == (2, 0)
        assert mark_sending(
            session, claims[1], worker="other-host:1:x", now=LATER, lease=LEASE, message_id="<m>", paper_ids=[]
        )
    with open_session(engine, immediate=True) as session:
        assert expire_leases(session, now=LATER + LEASE / 2) == (0, 0)
        assert claim_deliveries(session, worker="me:2:y", now=LATER + LEASE / 2, lease=LEASE, limit=10) == ([], 0)
    assert [r.status for r in rows(engine)] == [CLAIMED, "sending"]
    with open_session(engine, immediate=True) as session:
        assert expire_leases(session, now=LATER + LEASE) == (1, 1)
    assert [r.status for r in rows(engine)] == [PENDING, UNKNOWN]
    assert "may or may not have arrived" in (rows(engine)[1].last_error or "")


def test_dry_run_writes_eml_files_and_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    emails = seed_database(engine, subscribers=2)
    url = engine.url.render_as_string(hide_password=False)
    before = [(r.status, r.id) for r in rows(engine)]
    result = CliRunner().invoke(
        cli, ["--database", url, "send", "--dry-run", "--out", str(tmp_path / "out"), emails[0]]
    )
    assert result.exit_code == 0, result.output
    assert "development key" in result.output
    files = list((tmp_path / "out").glob("*.eml"))
    assert len(files) == 1 and files[0].name.startswith(emails[0])
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in files[0].read_bytes()
    assert [(r.status, r.id) for r in rows(engine)] == before == []


def test_sending_for_real_needs_the_secret_key(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner(env={"DIGESTD_SECRET_KEY": ""}).invoke(cli, ["--database", url, "send"])
    assert result.exit_code == 2
    assert "DIGESTD_SECRET_KEY is not set" in result.output
