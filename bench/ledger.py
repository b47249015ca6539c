"""The ledger steps that SQLite and PostgreSQL run differently, timed both ways on
PostgreSQL (and the portable way on SQLite) in one run: the figures the comments beside
those splits quote.

    python -m bench.ledger [--subscribers 20000] [--messages 2000] [--window 2000] [--rounds 3]

- plan: the planner's INSERT of a pending row per subscriber: one INSERT over arrays
  (PostgreSQL's way) or a multi-row INSERT, SQLAlchemy's batched executemany (SQLite's).
- sent: a message's two ledger writes, the `sending` mark and `sent` with 20 never-twice
  records: in autocommit with `sent` as one statement (PostgreSQL's way), or a transaction
  each with `sent` as three statements (SQLite's).
- never-twice window: `load_profiles`' history query for 200 subscribers of 200 records
  each, kept to the window's paper ids: passed as one parameter (an array on PostgreSQL,
  JSON on SQLite) or as an IN list of one parameter per id.

Each database is fresh (a temporary SQLite file, a PostgreSQL database created and
dropped); rounds alternate the ways. Shown: the median and range over rounds of the wall
time per unit, and this process's CPU (the client's; the server's is not in it).
PostgreSQL is skipped when it does not answer (`DIGESTD_TEST_POSTGRES` or `--admin-url`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, text
from sqlmodel import col, select

from bench.scaleout import ADMIN_URL, on_both_databases
from bench.support import reference_seconds
from digestd.delivery.claims import Claim, LedgerStatements, mark_sending, record_sent, sent_by_statements
from digestd.delivery.ledger import CLAIMED, SENT, insert_planned_over_arrays, insert_planned_rows
from digestd.delivery.send import LedgerLine
from digestd.models import Delivery, SentPaper, Subscriber
from digestd.schedule import Period
from digestd.store import migrate, open_session
from digestd.subscribers import paper_id_among

NOW = datetime(2026, 11, 30, tzinfo=UTC)
START = NOW - timedelta(days=7)
LEASE = timedelta(minutes=2)
BATCH = 200  # subscribers per history query, as a claimed batch
HISTORY = 200  # never-twice records per subscriber, 10 of them in the window

Way = tuple[str, Callable[[], tuple[float, float]]]  # name, run → (wall s, CPU s)


def timed(work: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def vacuum(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE delivery, sent_paper, subscriber"))


def add_subscribers(engine: Engine, count: int) -> None:
    migrate(engine)
    with open_session(engine) as session:
        rows = [{"id": i, "email": f"reader{i}@example.org", "created_at": NOW} for i in range(1, count + 1)]
        session.execute(insert(Subscriber), rows)


def plan_ways(engine: Engine, subscribers: int) -> list[Way]:
    periods = {i: Period(start=START, end=NOW, key="2026-11-30") for i in range(1, subscribers + 1)}

    def way(insert_planned: Callable[..., int]) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            with open_session(engine) as session:
                session.execute(delete(Delivery))
            vacuum(engine)
            with open_session(engine) as session:
                return timed(lambda: insert_planned(session, periods, NOW))

        return run

    rows = ("multi-row INSERT", way(insert_planned_rows))
    if engine.dialect.name != "postgresql":
        return [rows]
    return [("one INSERT over arrays", way(insert_planned_over_arrays)), rows]


def claimed_rows(engine: Engine, messages: int, period: str) -> list[Claim]:
    with open_session(engine) as session:
        session.execute(delete(SentPaper))
        session.execute(delete(Delivery))
        base = {"period": period, "period_start": START, "period_end": NOW, "status": CLAIMED, "attempts": 0}
        base |= {"paper_ids": [], "created_at": NOW, "updated_at": NOW, "lease_owner": "bench"}
        base |= {"lease_expires_at": NOW + LEASE}
        session.execute(insert(Delivery), [base | {"subscriber_id": i} for i in range(1, messages + 1)])
        rows = session.execute(select(Delivery.id, Delivery.subscriber_id).order_by(col(Delivery.id))).all()
    vacuum(engine)
    return [Claim(row.id, row.subscriber_id, "", period, START, NOW, NOW) for row in rows]


def sent_ways(engine: Engine, messages: int) -> list[Way]:
    statements = LedgerStatements()
    rounds = iter(range(1_000_000))

    def way(writes: Engine, record: Callable[..., object]) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            claims = claimed_rows(engine, messages, f"p{next(rounds)}")
            line = LedgerLine(writes)

            def send_all() -> None:
                for number, claim in enumerate(claims):
                    papers = [f"2611.{claim.subscriber_id:05d}{j:02d}" for j in range(20)]
                    with line.begin() as db:
                        marked = mark_sending(
                            db,
                            claim,
                            worker="bench",
                            now=NOW,
                            lease=LEASE,
                            message_id=f"<{number}@bench>",
                            paper_ids=papers,
                            statements=statements,
                        )
                        assert marked
                    with line.begin() as db:
                        assert record(db, claim, now=NOW, paper_ids=papers, statements=statements) in (SENT, True)

            try:
                return timed(send_all)
            finally:
                line.close()
                check_sent(engine, messages)

        return run

    by_statements = ("a transaction each, `sent` as three statements", way(engine, sent_by_statements))
    if engine.dialect.name != "postgresql":
        return [(by_statements[0], way(engine, record_sent))]
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    return [("autocommit, `sent` as one statement", way(autocommit, record_sent)), by_statements]


def check_sent(engine: Engine, messages: int) -> None:
    with open_session(engine) as session:
        sent = session.scalar(select(func.count()).select_from(Delivery).where(col(Delivery.status) == SENT))
        papers = session.scalar(select(func.count()).select_from(SentPaper))
    assert (sent, papers) == (messages, 20 * messages), (sent, papers)


def window_ways(engine: Engine, subscribers: int, window_size: int) -> list[Way]:
    window = [f"2611.{i:05d}" for i in range(window_size)]
    with open_session(engine) as session:
        session.execute(delete(SentPaper))
        for start in range(1, subscribers + 1, 1000):
            rows = [
                {"subscriber_id": i, "paper_id": f"2611.{(i * 7 + j) % window_size:05d}", "sent_at": NOW}
                if j < 10
                else {"subscriber_id": i, "paper_id": f"2501.{i:05d}{j:03d}", "sent_at": NOW}
                for i in range(start, min(start + 1000, subscribers + 1))
                for j in range(HISTORY)
            ]
            session.execute(insert(SentPaper), rows)
    vacuum(engine)

    def way(among: Any) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            def read_all() -> None:
                found = 0
                with open_session(engine) as session:
                    for start in range(1, subscribers + 1, BATCH):
                        batch = list(range(start, min(start + BATCH, subscribers + 1)))
                        query = select(SentPaper.subscriber_id, SentPaper.paper_id)
                        query = query.where(col(SentPaper.subscriber_id).in_(batch), among)
                        found += len(session.execute(query).all())
                assert found == 10 * subscribers, found

            return timed(read_all)

        return run

    one = paper_id_among(engine.dialect.name, window)
    return [("one parameter", way(one)), ("IN list", way(col(SentPaper.paper_id).in_(window)))]


def measure(name: str, engine: Engine, args: argparse.Namespace) -> None:
    add_subscribers(engine, args.subscribers)
    readers = min(args.subscribers, 2000)
    batches = -(-readers // BATCH)
    steps = [
        ("plan", f"{args.subscribers:,} rows", args.subscribers / 1000, "ms per 1,000 rows"),
        ("sent", f"{args.messages:,} messages", args.messages, "ms per message"),
        ("never-twice window", f"{args.window:,} ids, {batches} batches", batches, "ms per batch"),
    ]
    make_ways = [  # each sets up its tables when its turn comes
        lambda: plan_ways(engine, args.subscribers),
        lambda: sent_ways(engine, args.messages),
        lambda: window_ways(engine, readers, args.window),
    ]
    for (step, size, units, unit), make in zip(steps, make_ways, strict=True):
        ways = make()
        results: dict[str, list[tuple[float, float]]] = {way: [] for way, _ in ways}
        for number in range(args.rounds):
            for way, run in ways if number % 2 == 0 else ways[::-1]:
                results[way].append(run())
        for way, times in results.items():
            walls = sorted(1000 * wall / units for wall, _ in times)
            cpu = statistics.median(1000 * used / units for _, used in times)
            spread = f"{walls[0]:.2f}–{walls[-1]:.2f}"
            print(
                f"| {step} ({size}) | {name} | {way} | {statistics.median(walls):.2f} ({spread}) | {cpu:.2f} | {unit} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--window", type=int, default=2_000, help="paper ids in the never-twice window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    args = parser.parse_args()
    print(f"machine: reference loop {reference_seconds():.2f} s (lower is faster)")
    print("| step | database | way | wall: median (range) | CPU (client) | unit |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    on_both_databases(lambda name, engine: measure(name, engine, args), args.admin_url)


if __name__ == "__main__":
    main()
