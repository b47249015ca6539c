"""Scale-out: the weekly run of N subscribers on PostgreSQL with 1, 2 and 4 `digestd worker`
processes against one aiosmtpd sink (its own process), on this machine.

    PYTHONPATH=. python bench/scaleout.py [--subscribers 100000] [--workers 1,2,4] [--papers 1500]
    python -m bench.scaleout ...            (the same, from the checkout's root)

For each worker count, on one fresh PostgreSQL database (created, migrated by Alembic,
dropped at the end): the ledger is emptied, every subscriber made due and the tables
vacuumed (then a CHECKPOINT, so no run pays for the one before); planning is timed
(`plan_due`, as the daemon's tick runs it); then the workers run with `--exit-when-idle
--json` until nothing is claimable. Reported: wall time, messages/s, where the workers'
time went (database: claims, loads and ledger writes; rank+render; SMTP), each worker's
peak RSS, and the sink's CPU. Rank and render are also timed apart, in this process, on a
sample of subscribers, to split the workers' rank+render time. Papers come from
../shared/data/abstracts.jsonl.gz when present, else are synthetic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from bench.support import (
    ROOT,
    SECRET,
    cpu_seconds,
    free_port,
    reference_seconds,
    reset_ledger,
    seed,
    start_sink,
    stop_sink,
)
from digestd.config import MailSettings
from digestd.delivery.batches import PeriodCache, load_batch
from digestd.delivery.claims import Claim
from digestd.delivery.send import plan_due
from digestd.mail.render import make_email_builder
from digestd.models import Delivery, Subscriber
from digestd.ranking.digest import build_digests
from digestd.store import make_engine, migrate, open_session

ADMIN_URL = os.environ.get("DIGESTD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_cpu_seconds() -> float | None:
    """CPU of the local PostgreSQL server's processes (finished backends included, through
    their parent's children times); None when it is not on this machine or not readable."""
    total, found = 0.0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" ", 2)[1] in ("(postgres)", "(postmaster)"):
                total += cpu_seconds(int(stat.parent.name), children=True)
                found = True
        except (OSError, IndexError, ValueError):
            continue
    return total if found else None


def create_database(admin_url: str) -> tuple[str, Engine]:
    name = f"digestd_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    return name, make_engine(url)


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def on_both_databases(measure: Callable[[str, Engine], None], admin_url: str) -> None:
    """`measure(name, engine)` on a fresh SQLite file, then on a fresh PostgreSQL database
    (dropped after; skipped with a line when the server does not answer)."""
    with tempfile.TemporaryDirectory(prefix="digestd-bench-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        measure("SQLite", engine)
        engine.dispose()
    try:
        name, engine = create_database(admin_url)
    except OperationalError as error:
        print(f"PostgreSQL skipped: {admin_url} does not answer ({error.orig})")
        return
    try:
        measure("PostgreSQL", engine)
    finally:
        engine.dispose()
        drop_database(admin_url, name)


def write_config(folder: Path, url: str, port: int, connections: int) -> Path:
    config = folder / "digestd.toml"
    smtp = f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\nconnections = {connections}\n'
    smtp += "rate_per_second = 1000000\nlease_seconds = 120\nbatch_size = 200\n"
    mail = 'from = "Digest <digest@example.org>"\nbase_url = "https://digest.example.org"\n'
    config.write_text(f'[database]\nurl = "{url}"\n[mail]\n{mail}[smtp]\n{smtp}[log]\nlevel = "WARNING"\n')
    return config


def run_workers(config: Path, count: int) -> tuple[float, list[dict[str, Any]]]:
    """Start `count` workers, wait for all; their JSON summaries with each one's peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DIGESTD_SECRET_KEY": SECRET}
    command = [sys.executable, "-m", "digestd", "--config", str(config), "worker", "--exit-when-idle", "--json"]
    started = time.perf_counter()
    outputs = [tempfile.TemporaryFile() for _ in range(count)]
    processes = [subprocess.Popen(command, env=env, stdout=out) for out in outputs]
    summaries = []
    for process, out in zip(processes, outputs, strict=True):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        assert process.returncode == 0, f"worker exited with {process.returncode}"
        out.seek(0)
        summary = json.loads(out.read().decode().strip().splitlines()[-1])
        summary["max_rss_mb"] = usage.ru_maxrss / 1024
        summary["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        summaries.append(summary)
    return time.perf_counter() - started, summaries


def count_sent(engine: Engine) -> int:
    with open_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) or 0)


def settle(engine: Engine) -> None:
    """Vacuum away the previous run's dead rows and write its pages out, so that each run
    starts from the same state instead of paying for the one before (PostgreSQL's CPU grew
    from 130 to 273 s over three runs in a row without this)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE delivery, sent_paper, subscriber"))
        connection.execute(text("CHECKPOINT"))


def measure(args: argparse.Namespace, engine: Engine, config: Path, sink: int, workers: int, split: float) -> None:
    now = datetime.now(UTC) - timedelta(minutes=1)
    reset_ledger(engine, now)
    settle(engine)
    started = time.perf_counter()
    planned = plan_due(engine, now=datetime.now(UTC))
    plan_seconds = time.perf_counter() - started
    before, database_before = cpu_seconds(sink), postgres_cpu_seconds()
    seconds, summaries = run_workers(config, workers)
    database_after = postgres_cpu_seconds()
    sent = count_sent(engine)
    assert planned == sent == args.subscribers, (planned, sent)
    total = {key: sum(s[key] for s in summaries) for key in ("database_seconds", "build_seconds", "smtp_seconds")}
    rank, render = total["build_seconds"] * split, total["build_seconds"] * (1 - split)
    cells = [workers, sent, f"{plan_seconds:.1f}", f"{seconds:.1f}", f"{sent / seconds:.0f}"]
    cells += [f"{plan_seconds + seconds:.1f}", f"{total['database_seconds']:.0f}", f"{rank:.0f}", f"{render:.0f}"]
    cells += [f"{total['smtp_seconds']:.0f}", f"{max(s['max_rss_mb'] for s in summaries):.0f}"]
    cpu = sum(s["cpu_seconds"] for s in summaries)
    cells += [f"{cpu:.0f} ({cpu / sent * 1000:.1f} ms/message)", f"{cpu_seconds(sink) - before:.0f}"]
    if database_before is None or database_after is None:
        cells.append("n/a")
    else:
        cells.append(f"{database_after - database_before:.0f}")
    print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)


def measure_split(engine: Engine, sample: int) -> float:
    """The share of rank in rank+render, from `sample` subscribers ranked (in batches of
    200 over the period's shared window, as the workers do) and rendered here."""
    now = datetime.now(UTC)
    start = now - timedelta(days=7)
    with open_session(engine) as session:
        rows = session.execute(select(Subscriber.id, Subscriber.email).order_by(col(Subscriber.id)).limit(sample))
        claims = [Claim(0, sid, email, "bench", start, now, now) for sid, email in rows]
    cache = PeriodCache()
    batches = [
        b for first in range(0, len(claims), 200) for b in load_batch(engine, claims[first : first + 200], cache)
    ]
    started = time.perf_counter()
    window = cache.window(batches[0])
    window_seconds = time.perf_counter() - started
    digests = [
        d for b in batches for d in build_digests(window, b.profiles, period_start=start, period_end=now, now=now)
    ]
    rank_seconds = time.perf_counter() - started - window_seconds
    builder = make_email_builder(MailSettings(from_="Digest <digest@example.org>"), secret_key=SECRET)
    builder = builder.for_relay(eight_bit=True)  # as the workers render for the sink, which offers 8BITMIME
    started = time.perf_counter()
    for digest in digests:
        builder.build(digest, period="bench", now=now)
    render_seconds = time.perf_counter() - started
    per = 1000 / len(digests)
    print(f"window ({len(cache.papers[(start, now)])} papers, once per worker and period): {window_seconds:.2f} s")
    print(f"per subscriber: rank {rank_seconds * per:.2f} ms, render {render_seconds * per:.2f} ms (in one process)")
    return rank_seconds / (rank_seconds + render_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=1500)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--connections", type=int, default=2, help="SMTP connections per worker")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    args = parser.parse_args()
    print(f"machine: reference loop {reference_seconds():.2f} s (lower is faster)")
    name, engine = create_database(args.admin_url)
    folder = Path(tempfile.mkdtemp(prefix="digestd-bench-scaleout-"))
    port = free_port()
    sink = start_sink(port)
    try:
        migrate(engine)
        started = time.perf_counter()
        seed(engine, subscribers=args.subscribers, papers=args.papers, now=datetime.now(UTC) - timedelta(minutes=1))
        print(f"{args.subscribers} subscribers, {args.papers} papers seeded in {time.perf_counter() - started:.1f} s")
        split = measure_split(engine, min(args.subscribers, 2000))
        config = write_config(folder, engine.url.render_as_string(hide_password=False), port, args.connections)
        print(
            "| workers | messages | plan s | deliver s | messages/s | plan+deliver s | database s | rank s "
            "| render s | SMTP s (all connections) | peak RSS MB (max worker) | workers' CPU s | sink CPU s "
            "| PostgreSQL CPU s |"
        )
        print("| ---: " * 14 + "|")
        for workers in (int(n) for n in args.workers.split(",")):
            measure(args, engine, config, sink.pid, workers, split)
    finally:
        print(f"sink: {stop_sink(sink)}")
        print(f"machine: reference loop {reference_seconds():.2f} s")
        engine.dispose()
        drop_database(args.admin_url, name)


if __name__ == "__main__":
    main()
