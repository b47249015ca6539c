"""The ledger on PostgreSQL: ON CONFLICT planning, FOR UPDATE SKIP LOCKED claiming, a send."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from seeds import DUE, make_settings, seed_database
from sinks import Sink
from sqlalchemy import Engine, create_engine, text
from test_send import (
    LATER,
    check_forgetting_old_records,
    check_forgetting_records_that_share_a_time,
    check_never_twice_reads_only_the_window,
    run_send,
)

from digestd.delivery.claims import claim_deliveries
from digestd.delivery.ledger import plan_deliveries
from digestd.store import make_engine, migrate, open_session
from digestd.subscribers import list_subscribers

ADMIN_URL = os.environ.get("DIGESTD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"digestd_delivery_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # no server: skipped, except in CI
        admin.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL is not available: {str(error).splitlines()[0]}")
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_planning_is_idempotent_and_claims_skip_locked_rows(pg_engine: Engine) -> None:
    seed_database(pg_engine, subscribers=4)
    for expected in (4, 0):
        with open_session(pg_engine) as session:
            subscribers = list_subscribers(session)
            for subscriber in subscribers:
                subscriber.next_due_at = DUE  # as a second node that has not seen the first plan would
            assert plan_deliveries(session, now=LATER, subscribers=subscribers, forced=False) == expected
    lease = timedelta(minutes=5)
    with open_session(pg_engine) as first:
        held, _ = claim_deliveries(first, worker="a:1:x", now=LATER, lease=lease, limit=2)
        with open_session(pg_engine) as second:  # while the first transaction still holds its rows
            other, _ = claim_deliveries(second, worker="b:2:y", now=LATER, lease=lease, limit=10)
    assert len(held) == 2 and len(other) == 2
    assert {c.delivery_id for c in held}.isdisjoint(c.delivery_id for c in other)


def test_a_send_on_postgresql(pg_engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(pg_engine, subscribers=3)
    assert run_send(pg_engine, make_settings(sink)).sent == 3
    assert sorted(r for m in sink.handler.messages for r in m.recipients) == emails
    assert run_send(pg_engine, make_settings(sink), now=LATER + timedelta(minutes=1)).sent == 0


def test_never_twice_reads_only_the_window_on_postgresql(pg_engine: Engine, start_sink: Any) -> None:
    check_never_twice_reads_only_the_window(pg_engine, start_sink())


def test_old_never_twice_records_are_forgotten_on_postgresql(pg_engine: Engine) -> None:
    check_forgetting_old_records(pg_engine)


def test_records_that_share_a_time_are_forgotten_together_on_postgresql(pg_engine: Engine) -> None:
    check_forgetting_records_that_share_a_time(pg_engine)
