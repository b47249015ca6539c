"""`digestd worker` processes on real PostgreSQL: SIGKILLed in the middle of their batches
and restarted while thousands of digests go out, and cut off from the database mid-batch.
Every subscriber ends with exactly one message at the sink, except rows reported
`unknown`; none is skipped."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from processes import DEADLINE_SECONDS, Processes, still_running, wait_until
from scaleout_support import (
    free_port,
    lease_holders,
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
RUN_DEADLINE_SECONDS = 600.0  # for a whole run to finish; it takes a few seconds at light load
SUBSCRIBERS = 3_000
KILLS = 6
RATE_PER_WORKER = 100  # messages/s: the run outlasts the kills (>= 10 s) however fast the machine


def progress(engine: Engine) -> str:
    counts = ledger_counts(engine)
    return f"{counts.get(SENT, 0):,} of {sum(counts.values()):,} sent ({counts})"


def finished(engine: Engine) -> bool:
    counts = ledger_counts(engine)
    return not any(counts.get(status) for status in OPEN)


def wait_until_done(engine: Engine, workers: list[subprocess.Popen[bytes]]) -> None:
    wait_until(
        lambda: all(still_running(process) for process in workers) and finished(engine),
        "every delivery sent or unknown",
        progress=lambda: progress(engine),
        timeout=RUN_DEADLINE_SECONDS,
    )


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> list[str]:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    errors = []
    for process in workers:
        out, err = process.communicate(timeout=DEADLINE_SECONDS)
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


def busy_workers(engine: Engine, workers: list[subprocess.Popen[bytes]], kills: int) -> list[int]:
    """The indexes of the workers holding claimed or sending rows; a failure if nothing is left to send."""
    assert all(still_running(process) for process in workers)
    holders = lease_holders(engine)
    if not holders and finished(engine):
        raise AssertionError(f"the workers finished after only {kills} of {KILLS} kills: {progress(engine)}")
    return [index for index, process in enumerate(workers) if process.pid in holders]


def test_three_workers_one_killed_every_few_seconds_mail_everyone_exactly_once(
    pg: Engine, postgres_url: str, tmp_path: Path, processes: Processes
) -> None:
    """Six times, at a random moment, one of three workers that holds claims (so in the
    middle of a batch: claimed, rendering, on the wire, or recording) gets SIGKILL and a
    successor starts. Each subscriber still gets exactly one message, or is `unknown` and
    gets at most one; with one connection per worker there is at most one `unknown` per kill."""
    emails = seed_due(pg, subscribers=SUBSCRIBERS)
    assert plan_due(pg, now=datetime.now(UTC)) == SUBSCRIBERS
    port = free_port()
    sink = start_sink(processes, port)
    config = write_config(tmp_path, postgres_url, port, rate_per_second=RATE_PER_WORKER, connections=1)
    workers = [start_worker(processes, config) for _ in range(3)]
    rng = random.Random(8)
    for kills in range(KILLS):
        time.sleep(rng.uniform(0.2, 1.0))  # the random moment (the test's input, not a wait)
        holding = wait_until(
            partial(busy_workers, pg, workers, kills),
            f"a worker holding claims, for kill {kills + 1} of {KILLS}",
            progress=lambda: progress(pg),
            interval=0.02,
        )
        victim = rng.choice(holding)
        workers[victim].kill()
        workers[victim].communicate()
        workers[victim] = start_worker(processes, config)
    wait_until_done(pg, workers)
    stop_workers(workers)
    received = stop_sink(sink)
    unknown = check_exactly_once(received, ledger(pg), emails)
    assert unknown <= KILLS


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


def wait_for_sent(engine: Engine, worker: subprocess.Popen[bytes], count: int) -> None:
    wait_until(
        lambda: still_running(worker) and ledger_counts(engine).get(SENT, 0) >= count,
        f"{count:,} sent",
        progress=lambda: progress(engine),
    )


def test_a_worker_cut_off_from_the_database_mid_batch_recovers(
    pg: Engine, postgres_url: str, tmp_path: Path, processes: Processes
) -> None:
    """Three times while it sends, every connection of its database is cut for a second;
    each time it logs the loss, carries on (100 more sent), and records every outcome."""
    emails = seed_due(pg, subscribers=500)
    plan_due(pg, now=datetime.now(UTC))
    database = pg.url.database
    assert database is not None
    admin_url = pg.url.set(database="test").render_as_string(hide_password=False)
    pg.dispose()  # the test's own connections are cut too; it reconnects
    port = free_port()
    sink = start_sink(processes, port)
    config = write_config(tmp_path, postgres_url, port, lease_seconds=5, batch_size=50, connections=2)
    worker = start_worker(processes, config)
    wait_for_sent(pg, worker, 50)
    cut = 0
    for _ in range(3):  # cut while it works (at least 150 are left); each time it recovers and carries on
        sent = ledger_counts(pg).get(SENT, 0)
        pg.dispose()
        cut += terminate_backends(admin_url, database)
        wait_for_sent(pg, worker, sent + 100)
    wait_until_done(pg, [worker])
    (log,) = stop_workers([worker])
    received = stop_sink(sink)
    assert cut >= 3, "no connection was cut"
    assert "database connection lost" in log, log  # a round was cut mid-batch
    unknown = check_exactly_once(received, ledger(pg), emails)
    assert unknown == 0  # the worker lived on: every outcome it saw was recorded
