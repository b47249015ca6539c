"""Claiming ledger rows and recording what happened to them (see `ledger.py` for the states).

Every write is guarded by the row's current status (and lease owner), so a worker
whose lease was taken over cannot overwrite what another worker recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, or_, text, update
from sqlmodel import Session, col, select

from digestd.delivery.ledger import (
    CLAIMED,
    PERM_FAILED,
    SENDING,
    SENT,
    SKIPPED,
    TEMP_FAILED,
    UNKNOWN,
    claimable,
    expire_leases,
    retry_delay,
)
from digestd.models import Delivery, SentPaper, Subscriber, Suppression
from digestd.records import ACTIVE, SUPPRESSED
from digestd.store import insert_on_conflict
from digestd.subscribers import email_hash


@dataclass(frozen=True)
class Claim:
    """A ledger row this worker holds, with what building its digest needs."""

    delivery_id: int
    subscriber_id: int
    email: str
    period: str
    period_start: datetime
    period_end: datetime
    created_at: datetime


@dataclass(frozen=True)
class Result:
    """How one delivery ended: a ledger status, the reason, and whether to suppress the address."""

    status: str  # SENT, TEMP_FAILED, PERM_FAILED, UNKNOWN or SKIPPED
    reason: str = ""
    suppress: bool = False


def _skip_reason(status: str, email: str, suppressed: set[str]) -> str | None:
    if status != ACTIVE:
        return f"subscriber is {status}"
    if email_hash(email) in suppressed:
        return "address is on the suppression list"
    return None


def claim_deliveries(
    session: Session,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    subscriber_ids: Sequence[int] | None = None,
    resend_unknown: bool = False,
) -> tuple[list[Claim], int]:
    """Take up to `limit` rows that are due, under a lease; returns them and how many were
    skipped instead (unsubscribes and suppressions are checked now, not at planning).
    SQLite callers hold the write lock (BEGIN IMMEDIATE); PostgreSQL skips rows that other
    workers have locked (FOR UPDATE SKIP LOCKED)."""
    expire_leases(session, now=now)
    fields = select(Delivery).with_only_columns(
        col(Delivery.id),
        col(Delivery.subscriber_id),
        col(Delivery.period),
        col(Delivery.period_start),
        col(Delivery.period_end),
        col(Delivery.created_at),
    )
    query = claimable(fields, now=now, subscriber_ids=subscriber_ids, resend_unknown=resend_unknown)
    rows = session.execute(query.order_by(col(Delivery.id)).limit(limit).with_for_update(skip_locked=True)).all()
    ids = list({row.subscriber_id for row in rows})
    found = session.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.status).where(col(Subscriber.id).in_(ids))
    )
    subscribers = {row.id: row for row in found}
    hashes = [email_hash(s.email) for s in subscribers.values()]
    suppressed = set(session.scalars(select(Suppression.email_hash).where(col(Suppression.email_hash).in_(hashes))))
    claims, skips = [], {}
    for row in rows:
        subscriber = subscribers[row.subscriber_id]
        reason = _skip_reason(subscriber.status, subscriber.email, suppressed)
        if reason:
            skips[row.id] = reason
        else:
            claims.append(Claim(row.id, row.subscriber_id, subscriber.email, *row[2:]))
    # One UPDATE for the whole batch (and one per skipped row, which is rare).
    if claims:
        values = {"status": CLAIMED, "lease_owner": worker, "lease_expires_at": now + lease, "updated_at": now}
        session.execute(update(Delivery).where(col(Delivery.id).in_([c.delivery_id for c in claims])).values(**values))
    for delivery_id, reason in skips.items():
        values = {"status": SKIPPED, "last_error": reason, "updated_at": now}
        session.execute(update(Delivery).where(col(Delivery.id) == delivery_id).values(**values))
    return claims, len(skips)


OPEN_STATES = (CLAIMED, SENDING, UNKNOWN)  # what `finish_delivery` may still change


class LedgerStatements:
    """The statements run once per message, built once per run: building a SQLAlchemy
    statement costs more than SQLite takes to run it."""

    def __init__(self) -> None:
        last = col(Subscriber.last_digest_at)
        self.sending = (
            update(Delivery)
            .where(col(Delivery.id) == bindparam("p_id"), col(Delivery.status) == CLAIMED)
            .where(col(Delivery.lease_owner) == bindparam("p_worker"))
            .values(
                status=SENDING,
                attempts=col(Delivery.attempts) + 1,
                message_id=bindparam("p_message_id"),
                paper_ids=bindparam("p_paper_ids"),
                sections=bindparam("p_sections"),
                lease_expires_at=bindparam("p_lease"),
                updated_at=bindparam("p_now"),
            )
        )
        self.current = select(Delivery.status, Delivery.attempts).where(col(Delivery.id) == bindparam("p_id"))
        self.finish = (
            update(Delivery)
            .where(col(Delivery.id) == bindparam("p_id"), col(Delivery.status).in_(OPEN_STATES))
            .values(
                status=bindparam("p_status"),
                last_error=bindparam("p_error"),
                next_attempt_at=bindparam("p_next"),
                sent_at=bindparam("p_sent_at"),
                updated_at=bindparam("p_now"),
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        self.last_digest = (
            update(Subscriber)
            .where(col(Subscriber.id) == bindparam("p_subscriber"), or_(last.is_(None), last < bindparam("p_end")))
            .values(last_digest_at=bindparam("p_new_end"))
        )
        self.sent_papers = {
            name: insert_on_conflict(name, SentPaper).on_conflict_do_nothing() for name in ("sqlite", "postgresql")
        }
        self.sent_postgresql = _SENT_POSTGRESQL


# On PostgreSQL, `sent` is one statement (one round trip, its own transaction): the
# delivery row (guarded by its status, as in `finish`), its papers for never-twice and the
# subscriber's last digest, or nothing at all if the row was no longer open. SQLite has no
# UPDATE inside WITH, so it runs the three (`sent_by_statements`). Kept apart for what it
# buys: with the `sending` mark, 11.1 ms per message (7.1-16.1) against 17.0 (8.9-25.9)
# for three statements in a transaction, and 2.4 against 4.6 ms of the sender's CPU
# (`python -m bench.ledger`, 2026-12-01, loaded VM; PostgreSQL on the same VM).
_SENT_POSTGRESQL = text(
    f"""
    WITH done AS (
        UPDATE delivery SET status = '{SENT}', last_error = NULL, next_attempt_at = NULL, sent_at = :p_now,
            updated_at = :p_now, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = :p_id AND status IN ({", ".join(f"'{state}'" for state in OPEN_STATES)})
        RETURNING id, subscriber_id
    ), papers AS (
        INSERT INTO sent_paper (subscriber_id, paper_id, delivery_id, sent_at)
        SELECT done.subscriber_id, paper.id, done.id, :p_now
        FROM done, unnest(CAST(:p_paper_ids AS varchar[])) AS paper(id)
        ON CONFLICT DO NOTHING
    ), last AS (
        UPDATE subscriber SET last_digest_at = :p_end FROM done
        WHERE subscriber.id = done.subscriber_id
            AND (subscriber.last_digest_at IS NULL OR subscriber.last_digest_at < :p_end)
    )
    SELECT count(*) FROM done
    """
)


def mark_sending(
    db: Connection | Session,
    claim: Claim,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    message_id: str,
    paper_ids: Sequence[str],
    sections: Sequence[dict[str, Any]] | None = None,
    statements: LedgerStatements | None = None,
) -> bool:
    """Record that the SMTP transaction is about to start, with the papers and `sections`
    the message carries (`mail.render.digest_sections`); False if the claim was lost."""
    params = {"p_id": claim.delivery_id, "p_worker": worker, "p_message_id": message_id}
    params |= {"p_paper_ids": list(paper_ids), "p_lease": now + lease, "p_now": now}
    params["p_sections"] = list(sections) if sections is not None else None
    result = db.execute((statements or LedgerStatements()).sending, params)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _suppress(db: Connection, claim: Claim, reason: str, now: datetime) -> None:
    row = {"email_hash": email_hash(claim.email), "reason": reason[:50], "created_at": now}
    db.execute(insert_on_conflict(db.dialect.name, Suppression).on_conflict_do_nothing(), [row])
    db.execute(update(Subscriber).where(col(Subscriber.id) == claim.subscriber_id).values(status=SUPPRESSED))


def _give_up_or_retry(
    result: Result, attempts: int, claim: Claim, now: datetime, retry_for: timedelta
) -> tuple[Result, datetime | None]:
    """A 4xx result becomes a retry at `now + backoff`, or a permanent failure past `retry_for`."""
    if result.status != TEMP_FAILED:
        return result, None
    delay = retry_delay(attempts)
    if now + delay - claim.created_at > retry_for:
        return Result(PERM_FAILED, f"gave up after {attempts} attempts: {result.reason}"), None
    return result, now + delay


def finish_delivery(
    db: Connection,
    claim: Claim,
    result: Result,
    *,
    now: datetime,
    retry_for: timedelta,
    paper_ids: Sequence[str] = (),
    statements: LedgerStatements | None = None,
) -> str:
    """Record how a claimed or sending delivery ended; returns the status written (or, if
    the row was no longer open, the status it has)."""
    sql = statements or LedgerStatements()
    if result.status == SENT and not result.suppress:
        return record_sent(db, claim, now=now, paper_ids=paper_ids, statements=sql)
    row = db.execute(sql.current, {"p_id": claim.delivery_id}).first()
    if row is None or row.status not in OPEN_STATES:
        return row.status if row is not None else SKIPPED
    result, next_attempt = _give_up_or_retry(result, row.attempts, claim, now, retry_for)
    sent = result.status == SENT
    params = {"p_id": claim.delivery_id, "p_status": result.status, "p_next": next_attempt, "p_now": now}
    params |= {"p_error": None if sent else result.reason or None, "p_sent_at": now if sent else None}
    db.execute(sql.finish, params)
    if sent:
        _record_papers(db, claim, paper_ids, now, sql)
    if result.status in (SENT, SKIPPED):
        end = claim.period_end
        db.execute(sql.last_digest, {"p_subscriber": claim.subscriber_id, "p_end": end, "p_new_end": end})
    if result.suppress:
        _suppress(db, claim, result.reason, now)
    return result.status


def record_sent(
    db: Connection, claim: Claim, *, now: datetime, paper_ids: Sequence[str], statements: LedgerStatements
) -> str:
    """Record the server's 250: the row becomes `sent`, its papers join the never-twice
    history and the subscriber's last digest moves on. Runs once per message, so it skips
    the read `finish_delivery` does: the guarded UPDATE says whether the row was still open.
    On PostgreSQL it is one statement, safe outside a transaction."""
    record = sent_in_one_statement if db.dialect.name == "postgresql" else sent_by_statements
    if record(db, claim, now=now, paper_ids=paper_ids, statements=statements):
        return SENT
    status = db.execute(statements.current, {"p_id": claim.delivery_id}).scalar()
    return status if status is not None else SKIPPED


def sent_by_statements(
    db: Connection, claim: Claim, *, now: datetime, paper_ids: Sequence[str], statements: LedgerStatements
) -> bool:
    """`record_sent` as three statements, in the caller's transaction (SQLite, and any
    database); False if the row was no longer open."""
    params = {"p_id": claim.delivery_id, "p_status": SENT, "p_next": None, "p_now": now}
    params |= {"p_error": None, "p_sent_at": now}
    if not db.execute(statements.finish, params).rowcount:
        return False
    _record_papers(db, claim, paper_ids, now, statements)
    end = claim.period_end
    db.execute(statements.last_digest, {"p_subscriber": claim.subscriber_id, "p_end": end, "p_new_end": end})
    return True


def sent_in_one_statement(
    db: Connection, claim: Claim, *, now: datetime, paper_ids: Sequence[str], statements: LedgerStatements
) -> bool:
    """`record_sent` as one statement (PostgreSQL); False if the row was no longer open."""
    params = {"p_id": claim.delivery_id, "p_now": now, "p_end": claim.period_end}
    params |= {"p_paper_ids": list(dict.fromkeys(paper_ids))}
    return bool(db.execute(statements.sent_postgresql, params).scalar_one())


def _record_papers(
    db: Connection, claim: Claim, paper_ids: Sequence[str], now: datetime, statements: LedgerStatements
) -> None:
    if paper_ids:
        rows = [
            {"subscriber_id": claim.subscriber_id, "paper_id": pid, "delivery_id": claim.delivery_id, "sent_at": now}
            for pid in dict.fromkeys(paper_ids)
        ]
        db.execute(statements.sent_papers[db.dialect.name], rows)
