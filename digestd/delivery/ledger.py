"""The delivery ledger: one `Delivery` row per (subscriber, period), never mailed twice.

    pending ─claim─> claimed ─> sending ─250─> sent
                        │           ├─4xx / lost before DATA─> temp_failed ─(backoff)─> claimed ...
                        │           │                         └─ past smtp.retry_for_hours ─> perm_failed
                        │           ├─5xx───────────────────> perm_failed (550-class at RCPT: suppressed)
                        │           └─lost inside DATA──────> unknown (re-sent only with --resend-unknown)
                        └─ unsubscribed / suppressed / nothing matched ─> skipped

`sending` is committed before the SMTP transaction starts and `sent` after the server's
250, so a crash between the two leaves `sending`, which becomes `unknown` when its lease
runs out (or at once, when its worker is known to be dead): never silently re-sent.
A lease that runs out on `claimed` (nothing was sent) goes back to `pending`.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, bindparam, delete, func, or_, text, update
from sqlmodel import Session, col, select

from digestd.models import Delivery, SentPaper, Subscriber
from digestd.records import ACTIVE
from digestd.schedule import Period, next_due_after, period_key, period_length
from digestd.store import insert_on_conflict, open_session

PENDING, CLAIMED, SENDING, SENT = "pending", "claimed", "sending", "sent"
TEMP_FAILED, PERM_FAILED, UNKNOWN, SKIPPED = "temp_failed", "perm_failed", "unknown", "skipped"
DELIVERY_STATUSES = (PENDING, CLAIMED, SENDING, SENT, TEMP_FAILED, PERM_FAILED, UNKNOWN, SKIPPED)
_CHUNK = 500
log = logging.getLogger(__name__)


class Schedule(Protocol):
    """What planning reads of a subscriber: a `Subscriber`, or a row of `SCHEDULE_COLUMNS`."""

    id: int | None
    next_due_at: datetime | None
    last_digest_at: datetime | None
    frequency: str
    send_day: str
    send_time: str
    timezone: str
    weekdays_only: bool


SCHEDULE_COLUMNS = (
    Subscriber.id,
    Subscriber.next_due_at,
    Subscriber.last_digest_at,
    Subscriber.frequency,
    Subscriber.send_day,
    Subscriber.send_time,
    Subscriber.timezone,
    Subscriber.weekdays_only,
)


def due_schedules(session: Session, now: datetime) -> list[Schedule]:
    """The active subscribers due now, as plain rows: a weekly run plans 100,000 of them,
    and ORM objects would cost more to load than the planning itself."""
    query = select(Subscriber).with_only_columns(*(col(column) for column in SCHEDULE_COLUMNS))
    query = query.where(col(Subscriber.status) == ACTIVE, col(Subscriber.next_due_at) <= now).order_by(
        col(Subscriber.id)
    )
    return list(session.execute(query).all())


def plan_period(subscriber: Schedule, now: datetime, *, previous_end: datetime | None, forced: bool) -> Period:
    """The period a digest planned `now` covers: from where the previous one ended (a first
    digest: one period before it was due) up to `now`, so papers that arrived between the
    due time and the planning tick (e.g. fetched by a daemon catching up after downtime)
    are in it. After downtime this is one catch-up digest, not one per missed period."""
    due = subscriber.next_due_at or now
    length = period_length(subscriber.frequency)
    key_time = now if forced else due
    start = previous_end or subscriber.last_digest_at or due - length
    return Period(start=min(start, now), end=now, key=period_key(key_time, subscriber.timezone))


def claimable(
    query: Any, *, now: datetime, subscriber_ids: Sequence[int] | None = None, resend_unknown: bool = False
) -> Any:
    """`query` narrowed to the rows a run may claim now: pending, retries that are due, and
    unknown ones when asked; only the given subscribers' if any."""
    statuses = [PENDING, TEMP_FAILED, *([UNKNOWN] if resend_unknown else [])]
    query = query.where(col(Delivery.status).in_(statuses))
    query = query.where(or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now))
    if subscriber_ids is not None:
        query = query.where(col(Delivery.subscriber_id).in_(subscriber_ids))
    return query


# On PostgreSQL the whole plan is one INSERT over arrays: a multi-row INSERT (SQLite's,
# batched by SQLAlchemy) costs the driver more to build than the server takes to insert it.
# Kept apart for that: 20,000 rows took 204 ms per 1,000 this way and 868 as multi-row, and
# 30 against 251 ms of the planner's CPU (`python -m bench.ledger`, 2026-12-01, loaded VM).
_PLAN_POSTGRESQL = text(
    f"""
    INSERT INTO delivery (subscriber_id, period, period_start, period_end, status, attempts, paper_ids,
        created_at, updated_at)
    SELECT planned.*, '{PENDING}', 0, CAST('[]' AS json), :now, :now
    FROM unnest(CAST(:subscriber_ids AS integer[]), CAST(:periods AS varchar[]),
        CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) AS planned
    ON CONFLICT (subscriber_id, period) DO NOTHING
    RETURNING id
    """
)


def _insert_ignoring_duplicates(session: Session, periods: dict[int, Period], now: datetime) -> int:
    """Insert a pending ledger row per (subscriber, period); one that exists is left as it
    is. Returns how many were inserted: RETURNING tells, whatever other planners do at the
    same time (counting the table before and after would count theirs too)."""
    if not periods:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        return insert_planned_over_arrays(session, periods, now)
    return insert_planned_rows(session, periods, now)


def insert_planned_rows(session: Session, periods: dict[int, Period], now: datetime) -> int:
    """`_insert_ignoring_duplicates` as a multi-row INSERT (SQLite, and any database)."""
    rows = [
        {"subscriber_id": subscriber_id, "period": period.key, "period_start": period.start, "period_end": period.end}
        | {"status": PENDING, "attempts": 0, "paper_ids": [], "created_at": now, "updated_at": now}
        for subscriber_id, period in periods.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = insert_on_conflict(dialect, Delivery).on_conflict_do_nothing(index_elements=["subscriber_id", "period"])
    return len(session.execute(insert.returning(col(Delivery.id)), rows).all())


def insert_planned_over_arrays(session: Session, periods: dict[int, Period], now: datetime) -> int:
    """`_insert_ignoring_duplicates` as one INSERT over arrays (PostgreSQL)."""
    columns = {"subscriber_ids": list(periods), "periods": [p.key for p in periods.values()]}
    columns |= {"starts": [p.start for p in periods.values()], "ends": [p.end for p in periods.values()]}
    return len(session.execute(_PLAN_POSTGRESQL, {**columns, "now": now}).all())


def load_previous_ends(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    ends: dict[int, datetime] = {}
    for start in range(0, len(ids), _CHUNK):
        query = (
            select(Delivery.subscriber_id, func.max(Delivery.period_end))
            .where(col(Delivery.subscriber_id).in_(ids[start : start + _CHUNK]))
            .group_by(col(Delivery.subscriber_id))
        )
        for subscriber_id, end in session.execute(query):
            ends[subscriber_id] = end
    return ends


def plan_deliveries(session: Session, *, now: datetime, subscribers: Sequence[Schedule], forced: bool) -> int:
    """Insert a ledger row for each subscriber's current period and move `next_due_at`
    past `now`; running it twice (or on two nodes) inserts nothing new. Subscribers not
    due yet are left alone unless `forced`. Returns the number of rows added."""
    if not forced:
        subscribers = [s for s in subscribers if s.next_due_at is None or s.next_due_at <= now]
    ids = [s.id for s in subscribers if s.id is not None]
    previous = load_previous_ends(session, ids)
    periods, moved = {}, []

    @functools.cache  # most subscribers share a schedule
    def next_due(frequency: str, send_day: str, send_time: str, timezone: str, weekdays_only: bool) -> datetime:
        return next_due_after(
            now,
            frequency=frequency,
            send_day=send_day,
            send_time=send_time,
            timezone=timezone,
            weekdays_only=weekdays_only,
        )

    failed: list[dict[str, Any]] = []
    for subscriber in subscribers:
        assert subscriber.id is not None
        previous_end = previous.get(subscriber.id)
        due = subscriber.next_due_at is None or subscriber.next_due_at <= now
        try:
            periods[subscriber.id] = plan_period(subscriber, now, previous_end=previous_end, forced=forced)
            if due:
                schedule = (subscriber.frequency, subscriber.send_day, subscriber.send_time, subscriber.timezone)
                moved.append({"b_id": subscriber.id, "b_next": next_due(*schedule, subscriber.weekdays_only)})
        except Exception as error:  # planning is pure: a value in this subscriber's row it cannot use
            reason = f"cannot plan this digest: {type(error).__name__}: {error}; fix it with `digestd subscribers edit`"
            log.warning("subscriber %s: %s", subscriber.id, reason)
            periods[subscriber.id] = Period(min(previous_end or now, now), now, period_key(now, "UTC"))
            failed.append({"b_id": subscriber.id, "b_period": periods[subscriber.id].key, "b_error": reason[:500]})
            if due:  # tried again a day later, so that the ledger says so once a day, not once a tick
                moved.append({"b_id": subscriber.id, "b_next": now + timedelta(days=1)})
    added = _insert_ignoring_duplicates(session, periods, now)
    if failed:
        _fail_planned(session, failed, now)
    if moved:  # one executemany, not a unit-of-work flush of every subscriber object
        table = Subscriber.__table__  # type: ignore[attr-defined]
        statement = update(table).where(table.c.id == bindparam("b_id")).values(next_due_at=bindparam("b_next"))
        session.execute(statement, moved)
        session.expire_all()
    return added


def _fail_planned(session: Session, rows: list[dict[str, Any]], now: datetime) -> None:
    """The rows just planned for subscribers whose schedule could not be computed are
    `perm_failed` with the reason (shown by `status`), never claimed."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    planned = (table.c.subscriber_id == bindparam("b_id"), table.c.period == bindparam("b_period"))
    statement = update(table).where(*planned, table.c.status == PENDING, table.c.created_at == now)
    session.execute(statement.values(status=PERM_FAILED, last_error=bindparam("b_error"), updated_at=now), rows)


def make_worker_id() -> str:
    """`host:pid:random`: the lease owner, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_dead_worker(owner: str | None) -> bool:
    """True when `owner` was a process on this host that no longer runs (its lease is void)."""
    host, _, rest = (owner or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def expire_leases(session: Session, *, now: datetime) -> tuple[int, int]:
    """Leases that ran out, or whose worker died: `claimed` → pending, `sending` → unknown.
    Returns (released, unknown). Runs before every claim, so it is two UPDATEs, not a
    statement per held row: whether a worker died is asked once per lease owner."""
    held = col(Delivery.status).in_([CLAIMED, SENDING])
    owners = session.scalars(select(Delivery.lease_owner).where(held).distinct()).all()
    dead = [owner for owner in owners if is_dead_worker(owner)]
    lapsed = or_(col(Delivery.lease_expires_at) <= now, col(Delivery.lease_owner).in_(dead))
    values: dict[str, object] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    released = session.execute(
        update(Delivery).where(col(Delivery.status) == CLAIMED, lapsed).values(status=PENDING, **values)
    )
    lost = "the worker stopped while sending; the message may or may not have arrived"
    unknown = session.execute(
        update(Delivery)
        .where(col(Delivery.status) == SENDING, lapsed)
        .values(status=UNKNOWN, last_error=lost, **values)
    )
    return int(released.rowcount or 0), int(unknown.rowcount or 0)  # type: ignore[attr-defined]


def release_claims(session: Session, *, worker: str, now: datetime, ids: Iterable[int] | None = None) -> int:
    """Give this worker's `claimed` rows (all, or `ids`) back to `pending` (e.g. on SIGTERM)."""
    statement = update(Delivery).where(col(Delivery.status) == CLAIMED, col(Delivery.lease_owner) == worker)
    if ids is not None:
        statement = statement.where(col(Delivery.id).in_(list(ids)))
    values = {"status": PENDING, "lease_owner": None, "lease_expires_at": None, "updated_at": now}
    return int(session.execute(statement.values(**values)).rowcount or 0)  # type: ignore[attr-defined]


def count_claimable(
    session: Session, *, now: datetime, subscriber_ids: Sequence[int] | None = None, resend_unknown: bool = False
) -> int:
    """How many rows a run would claim now (for a progress bar)."""
    query = select(func.count()).select_from(Delivery)
    query = claimable(query, now=now, subscriber_ids=subscriber_ids, resend_unknown=resend_unknown)
    return int(session.scalar(query) or 0)


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th failed attempt: 5 min, 10, 20, ... at most 4 hours."""
    return min(timedelta(minutes=5) * 2 ** max(attempts - 1, 0), timedelta(hours=4))


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Delivery.status, func.count()).group_by(col(Delivery.status)))
    return {status: int(count) for status, count in rows}


def recent_failures(session: Session, *, limit: int = 10) -> list[dict[str, object]]:
    """The latest failed, retrying and unknown deliveries, with their reasons."""
    query = (
        select(Delivery, Subscriber.email)
        .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
        .where(col(Delivery.status).in_([TEMP_FAILED, PERM_FAILED, UNKNOWN]))
        .order_by(col(Delivery.updated_at).desc())
        .limit(limit)
    )
    return [
        {
            "email": email,
            "period": row.period,
            "status": row.status,
            "attempts": row.attempts,
            "updated_at": row.updated_at,
            "next_attempt_at": row.next_attempt_at,
            "reason": row.last_error or "",
        }
        for row, email in session.execute(query)
    ]


def forget_sent_papers(
    engine: Engine, *, before: datetime, chunk: int = 50_000, keep_going: Callable[[], bool] = lambda: True
) -> int:
    """Delete the never-twice records (`sent_paper`) of papers mailed before `before`, oldest
    first; returns how many. A digest's candidates are the papers that arrived since the
    subscriber's previous digest, so an old record no longer keeps anything out, while the
    table grows by ~20 rows per message (a billion a year at a million weekly readers).
    About `chunk` rows per transaction, so no long transaction holds the table; stops
    between chunks when `keep_going()` turns false.

    A chunk is a range of `sent_at`, read from its index: up to the `chunk`-th oldest
    record's time, with the records that share it (the ~20 of one message). The same two
    statements on SQLite and PostgreSQL, and faster on both than deleting by physical row
    id with RETURNING (see bench/README.md, "Forgetting old never-twice records")."""
    sent_at = col(SentPaper.sent_at)
    forgotten, since = 0, None
    while keep_going():
        older = sent_at < before if since is None else and_(sent_at > since, sent_at < before)
        with open_session(engine) as session:
            last = session.scalar(select(sent_at).where(older).order_by(sent_at).offset(chunk - 1).limit(1))
            up_to_last = older if last is None else and_(older, sent_at <= last)
            forgotten += int(session.execute(delete(SentPaper).where(up_to_last)).rowcount or 0)  # type: ignore[attr-defined]
        if last is None:
            break
        since = last
    return forgotten
