"""Forgetting old never-twice records: `ledger.forget_sent_papers`, as the daemon's daily
purge runs it, on a fresh SQLite file and a fresh PostgreSQL database.

    python -m bench.forget [--subscribers 20000] [--papers 20]

Each subscriber gets a digest of `--papers` records at each of three ages (200, 100 and 10
days), the records of one digest at one time, the subscribers' digests a second apart (as
a run sends them); the records older than 180 days (one third) are deleted, about 50,000
per transaction.
PostgreSQL is skipped when it does not answer (`DIGESTD_TEST_POSTGRES` or `--admin-url`).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, insert, select

from bench.scaleout import ADMIN_URL, on_both_databases
from bench.support import reference_seconds
from digestd.delivery.ledger import forget_sent_papers
from digestd.models import SentPaper, Subscriber
from digestd.store import migrate, open_session

NOW = datetime(2026, 11, 30, tzinfo=UTC)
AGES = (200, 100, 10)  # days


def fill(engine: Engine, subscribers: int, papers: int) -> int:
    migrate(engine)
    with open_session(engine) as session:
        rows = [{"id": i, "email": f"reader{i}@example.org", "created_at": NOW} for i in range(1, subscribers + 1)]
        session.execute(insert(Subscriber), rows)
    for age in AGES:
        sent_at = NOW - timedelta(days=age)
        records = [
            {"subscriber_id": i, "paper_id": f"{age}.{j:05d}", "sent_at": sent_at + timedelta(seconds=i)}
            for i in range(1, subscribers + 1)
            for j in range(papers)
        ]
        with open_session(engine) as session:
            session.execute(insert(SentPaper), records)
    with open_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(SentPaper)) or 0)


def measure(name: str, engine: Engine, args: argparse.Namespace) -> None:
    total = fill(engine, args.subscribers, args.papers)
    started = time.perf_counter()
    forgotten = forget_sent_papers(engine, before=NOW - timedelta(days=180))
    seconds = time.perf_counter() - started
    print(f"| {name} | {total:,} | {forgotten:,} | {seconds:.2f} | {forgotten / seconds:,.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--papers", type=int, default=20, help="records per subscriber and age")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    args = parser.parse_args()
    print(f"machine: reference loop {reference_seconds():.2f} s (lower is faster)")
    print("| database | records | forgotten | seconds | records/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    on_both_databases(lambda name, engine: measure(name, engine, args), args.admin_url)


if __name__ == "__main__":
    main()
