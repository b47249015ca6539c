"""Several nodes on one PostgreSQL database: planners at once, the scheduler lock, worker
heartbeats in `digestd status`, and the worker's refusal of SQLite."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from scaleout_support import seed_due
from sqlalchemy import Engine, func, text
from sqlmodel import col, select

from digestd.cli import cli
from digestd.delivery.claims import claim_deliveries
from digestd.delivery.coordination import (
    SchedulerLock,
    beat_worker,
    register_worker,
    release_unsent,
    remove_worker,
    renew_leases,
)
from digestd.delivery.ledger import CLAIMED, PENDING, expire_leases
from digestd.delivery.send import plan_due
from digestd.models import Delivery
from digestd.status import collect_status, format_status
from digestd.store import open_session


@pytest.mark.postgres
def test_two_planners_at_once_plan_each_subscriber_and_period_exactly_once(pg: Engine) -> None:
    now = datetime.now(UTC)
    seed_due(pg, subscribers=3_000, now=now)
    barrier = threading.Barrier(2)
    planned: list[int] = []
    spans: list[tuple[float, float]] = []

    def plan() -> None:
        barrier.wait()
        started = time.monotonic()
        planned.append(plan_due(pg, now=now))
        spans.append((started, time.monotonic()))

    planners = [threading.Thread(target=plan) for _ in range(2)]
    for planner in planners:
        planner.start()
    for planner in planners:
        planner.join()
    with open_session(pg) as session:
        rows = session.scalar(select(func.count()).select_from(Delivery))
        pairs = session.scalar(select(func.count(func.distinct(col(Delivery.subscriber_id)))))
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a, "the planners did not run at the same time"
    assert rows == pairs == sum(planned) == 3_000
    assert plan_due(pg, now=now + timedelta(minutes=1)) == 0  # a third tick: nothing new


@pytest.mark.postgres
def test_one_node_at_a_time_holds_the_scheduler_lock_and_a_dead_connection_frees_it(pg: Engine) -> None:
    first, second = SchedulerLock(pg), SchedulerLock(pg)
    assert first.held()
    assert not second.held()
    assert first.held()  # still ours
    result = CliRunner().invoke(cli, ["--database", pg.url.render_as_string(hide_password=False), "status"])
    assert result.output.startswith("daemon:      running (scheduler lock held by PostgreSQL backend "), result.output
    assert first.connection is not None
    pid = first.connection.execute(text("SELECT pg_backend_pid()")).scalar()
    first.connection.commit()
    with pg.connect() as other:  # the node's connection dies (as when its process is killed)
        # with a timeout, it returns once the backend has exited (and so released its locks)
        assert other.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar()
    assert second.held()
    assert not first.held()  # it notices, and does not take it back
    second.release()
    assert first.held()
    first.release()


@pytest.mark.postgres
def test_status_lists_live_workers_with_their_throughput(pg: Engine, postgres_url: str) -> None:
    now = datetime.now(UTC)
    register_worker(pg, "vm:1:aaaa", now=now - timedelta(seconds=100))
    beat_worker(pg, "vm:1:aaaa", sent=500, now=now - timedelta(seconds=2))
    register_worker(pg, "vm:2:bbbb", now=now - timedelta(hours=2))  # died long ago: not listed
    report = collect_status(pg, now=now)
    assert [(w["id"], w["sent"], w["messages_per_second"]) for w in report["workers"]] == [("vm:1:aaaa", 500, 5.1)]
    assert "vm:1:aaaa (pid" in format_status(report)
    result = CliRunner().invoke(cli, ["--database", postgres_url, "status", "--json"], catch_exceptions=False)
    assert json.loads(result.output)["workers"][0]["messages_per_second"] == 5.1
    remove_worker(pg, "vm:1:aaaa")
    assert collect_status(pg, now=now)["workers"] == []


def test_the_worker_refuses_sqlite_in_one_line(sqlite_url: str, engine: Engine, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--database", sqlite_url, "worker"], env={"DIGESTD_SECRET_KEY": "k" * 32})
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == "error: digestd worker needs PostgreSQL; database.url is sqlite"


@pytest.mark.postgres
def test_a_worker_renews_its_leases_and_gives_back_what_it_never_sent(pg: Engine) -> None:
    now = datetime.now(UTC)
    seed_due(pg, subscribers=4, now=now)
    plan_due(pg, now=now)
    with open_session(pg) as session:
        claims, _ = claim_deliveries(session, worker="vm:1:aaaa", now=now, lease=timedelta(seconds=3), limit=3)
    assert renew_leases(pg, "vm:1:aaaa", now=now, lease=timedelta(seconds=3)) == 0  # fresh leases: left alone
    later = now + timedelta(seconds=2)
    assert renew_leases(pg, "vm:1:aaaa", now=later, lease=timedelta(seconds=3)) == 3
    assert renew_leases(pg, "vm:2:bbbb", now=later, lease=timedelta(seconds=3)) == 0
    with open_session(pg) as session:
        expiries = session.scalars(select(Delivery.lease_expires_at).where(col(Delivery.status) == CLAIMED))
        assert {e.replace(tzinfo=UTC) if e.tzinfo is None else e for e in expiries} == {later + timedelta(seconds=3)}
        assert expire_leases(session, now=now + timedelta(seconds=4)) == (0, 0)  # renewed: not expired
    ids = [claim.delivery_id for claim in claims]
    assert release_unsent(pg, "vm:1:aaaa", ids[:2], now=later) == 2
    with open_session(pg) as session:
        statuses = dict(session.execute(select(Delivery.id, Delivery.status)).all())
    assert [statuses[i] for i in ids] == [PENDING, PENDING, CLAIMED]
