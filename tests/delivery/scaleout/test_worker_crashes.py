"""`digestd worker` processes on real PostgreSQL: SIGKILLed and restarted while 20,000
digests go out, and cut off from the database mid-batch. Every subscriber ends with
exactly one message at the sink, except rows reported `unknown`; none is skipped."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scaleout_support import (
    free_port,
    ledger,
    ledger_counts,
    seed_due,
    start_sink,
    start_worker,
    stop_sink,
    write_config,
)
from sqlalchemy import Engine, create_engine, text

from digestd.delivery.ledger import SENT, UNKNOWN
from digestd.delivery.send import plan_due

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
OPEN = ("pending", "claimed", "sending", "temp_failed")


def wait_until_done(engine: Engine, workers: list[subprocess.Popen[bytes]], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = ledger_counts(engine)
        if not any(counts.get(status) for status in OPEN):
            return counts
        for process in workers:
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, f"not done in {timeout} s: {counts}"
        time.sleep(0.5)


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> list[str]:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    errors = []
    for process in workers:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()[-2000:]
        assert out.startswith(b"sent "), out
        errors.append(err.decode())
    return errors


def check_exactly_once(received: Counter[str], statuses: dict[str, str], emails: list[str]) -> int:
    """Every subscriber sent once (or unknown: at most once); returns the number unknown."""
    assert set(statuses) == set(emails)
    assert set(statuses.values()) <= {SENT, UNKNOWN}, Counter(statuses.values())
    assert set(received) <= set(emails)
    for email in emails:
        if statuses[email] == UNKNOWN:
            assert received[email] <= 1, email
        else:
            assert received[email] == 1, (email, received[email])
    return sum(status == UNKNOWN for status in statuses.values())


def test_three_workers_one_killed_every_few_seconds_mail_everyone_exactly_once(
    pg: Engine, postgres_url: str, tmp_path: Path
) -> None:
    emails = seed_due(pg, subscribers=20_000)
    assert plan_due(pg, now=datetime.now(UTC)) == 20_000
    port = free_port()
    sink = start_sink(port)
    config = write_config(tmp_path, postgres_url, port, lease_seconds=3, batch_size=50, connections=1)
    workers = [start_worker(config) for _ in range(3)]
    kills, rng = 0, random.Random(8)
    try:
        while kills < 8:
            time.sleep(rng.uniform(2.0, 4.0))
            counts = ledger_counts(pg)
            if counts.get("pending", 0) < 2_000:
                break
            victim = rng.randrange(3)
            workers[victim].kill()
            workers[victim].communicate()
            kills += 1
            workers[victim] = start_worker(config)
        wait_until_done(pg, workers, timeout=420)
        stop_workers(workers)
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
        received = stop_sink(sink)
    assert kills >= 3, "the workers finished before they were killed enough"
    unknown = check_exactly_once(received, ledger(pg), emails)
    assert unknown <= kills


def terminate_backends(admin_url: str, database: str, seconds: float = 1.0) -> int:
    """Terminate every backend of `database`, again and again for `seconds`, so that some
    are cut in the middle of a statement (idle ones are replaced silently: pool_pre_ping)."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    query = text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name")
    cut, deadline = 0, time.monotonic() + seconds
    try:
        with admin.connect() as connection:
            while time.monotonic() < deadline:
                cut += int(connection.execute(query, {"name": database}).scalar() or 0)
                time.sleep(0.01)
    finally:
        admin.dispose()
    return cut


def wait_for_sent(engine: Engine, worker: subprocess.Popen[bytes], count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while ledger_counts(engine).get("sent", 0) < count:
        assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, f"fewer than {count} sent after {timeout} s"
        time.sleep(0.1)


def test_a_worker_cut_off_from_the_database_mid_batch_recovers(pg: Engine, postgres_url: str, tmp_path: Path) -> None:
    emails = seed_due(pg, subscribers=800)
    plan_due(pg, now=datetime.now(UTC))
    database = pg.url.database
    assert database is not None
    admin_url = pg.url.set(database="test").render_as_string(hide_password=False)
    pg.dispose()  # the test's own connections are cut too; it reconnects
    port = free_port()
    sink = start_sink(port)
    config = write_config(tmp_path, postgres_url, port, lease_seconds=5, batch_size=50, connections=2)
    worker = start_worker(config)
    try:
        wait_for_sent(pg, worker, 100)
        cut = 0
        for _ in range(3):  # cut while it works; each time it recovers and carries on
            sent = ledger_counts(pg).get("sent", 0)
            pg.dispose()
            cut += terminate_backends(admin_url, database)
            wait_for_sent(pg, worker, sent + 150)
        wait_until_done(pg, [worker], timeout=120)
        (log,) = stop_workers([worker])
    finally:
        if worker.poll() is None:
            worker.kill()
        received = stop_sink(sink)
    assert cut >= 3, "no connection was cut"
    assert "database connection lost" in log, log  # a round was cut mid-batch
    unknown = check_exactly_once(received, ledger(pg), emails)
    assert unknown == 0  # the worker lived on: every outcome it saw was recorded
