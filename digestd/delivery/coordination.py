"""Coordination between digestd processes on PostgreSQL, with nothing but PostgreSQL.

- Workers register in the `worker` table, beat every few seconds with their sent count,
  and delete their row on a clean exit; `digestd status` lists those whose heartbeat is
  recent, with their throughput.
- The ingest and planning jobs of `digestd run` run on one node at a time: the node that
  holds a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated connection.
  PostgreSQL drops the lock when that connection ends, however the process dies, so
  another node takes over at its next tick. Planning is idempotent anyway (a unique key
  per subscriber and period), so a short overlap while a node notices it lost its
  connection inserts nothing twice.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from digestd.delivery.ledger import CLAIMED, PENDING, SENDING
from digestd.models import Delivery, Worker
from digestd.store import open_session

log = logging.getLogger(__name__)

LIVE_SECONDS = 30.0  # a worker whose heartbeat is older than this is not listed as live
FORGET_AFTER = timedelta(days=1)  # rows of workers that died without cleaning up are pruned
SCHEDULER_LOCK_KEY = 0x64696765  # "dige": the advisory lock of the ingest and planning jobs


def register_worker(engine: Engine, worker_id: str, *, now: datetime) -> None:
    """Add this worker's row (and forget workers silent for a day)."""
    with open_session(engine) as session:
        session.execute(delete(Worker).where(col(Worker.heartbeat_at) < now - FORGET_AFTER))
        host = socket.gethostname()
        session.add(Worker(id=worker_id, host=host, pid=os.getpid(), started_at=now, heartbeat_at=now, sent=0))


def beat_worker(engine: Engine, worker_id: str, *, sent: int, now: datetime) -> None:
    with engine.begin() as db:
        db.execute(update(Worker).where(col(Worker.id) == worker_id).values(heartbeat_at=now, sent=sent))


def remove_worker(engine: Engine, worker_id: str) -> None:
    with engine.begin() as db:
        db.execute(delete(Worker).where(col(Worker.id) == worker_id))


def throughput(sent: int, started_at: datetime, heartbeat_at: datetime) -> float:
    """Messages per second over the worker's life so far."""
    seconds = (heartbeat_at - started_at).total_seconds()
    return sent / seconds if seconds > 0 else 0.0


def list_live_workers(engine: Engine, *, now: datetime) -> list[dict[str, Any]]:
    """Workers whose last heartbeat is under `LIVE_SECONDS` old, oldest first."""
    since = now - timedelta(seconds=LIVE_SECONDS)
    query = select(Worker).where(col(Worker.heartbeat_at) >= since).order_by(col(Worker.started_at))
    with open_session(engine) as session:
        return [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "started_at": w.started_at,
                "heartbeat_at": w.heartbeat_at,
                "sent": w.sent,
                "messages_per_second": round(throughput(w.sent, w.started_at, w.heartbeat_at), 2),
            }
            for w in session.scalars(query)
        ]


class SchedulerLock:
    """The advisory lock that makes one node the one that ingests and plans.

    `held()` is asked before each job: it checks the dedicated connection is alive (a
    lost connection means a lost lock), and tries to take the lock if not held."""

    def __init__(self, engine: Engine, *, key: int = SCHEDULER_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self.connection: Connection | None = None

    def held(self) -> bool:
        try:
            if self.connection is not None:
                self.connection.execute(text("SELECT 1"))
                self.connection.commit()
                return True
            connection = self.engine.connect()
            got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            connection.commit()
        except DBAPIError as error:
            log.warning("scheduler lock: database connection lost: %s", str(error).splitlines()[0])
            self.release()
            return False
        if not got:
            connection.close()
            return False
        log.info("scheduler lock taken: this node runs the ingest and planning jobs")
        self.connection = connection
        return True

    def release(self) -> None:
        """Close the dedicated connection; PostgreSQL drops the lock with it."""
        if self.connection is not None:
            try:
                self.connection.invalidate()
                self.connection.close()
            except DBAPIError:
                pass
            self.connection = None


def renew_leases(engine: Engine, worker_id: str, *, now: datetime, lease: timedelta) -> int:
    """Push back the lease of the rows this worker holds (claimed or sending) that have used
    a third of it. Called at least every third of a lease, so no lease runs out while the
    worker lives; most rows are sent within seconds and are never rewritten for this."""
    statement = (
        update(Delivery)
        .where(col(Delivery.lease_owner) == worker_id, col(Delivery.status).in_([CLAIMED, SENDING]))
        .where(col(Delivery.lease_expires_at) < now + lease * 2 / 3)
        .values(lease_expires_at=now + lease)
    )
    with engine.begin() as db:
        return int(db.execute(statement).rowcount or 0)


def release_unsent(engine: Engine, worker_id: str, ids: list[int], *, now: datetime) -> int:
    """Rows this worker marked `sending` (or may have: the commit's reply was lost) but never
    handed to the SMTP server: back to pending, since nothing was sent."""
    statement = (
        update(Delivery)
        .where(col(Delivery.id).in_(ids), col(Delivery.lease_owner) == worker_id)
        .where(col(Delivery.status).in_([CLAIMED, SENDING]))
        .values(status=PENDING, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    with engine.begin() as db:
        return int(db.execute(statement).rowcount or 0)


def describe_scheduler_node(engine: Engine, *, key: int = SCHEDULER_LOCK_KEY) -> str | None:
    """Who holds the scheduler lock (PostgreSQL), as `status` shows it; None if nobody does."""
    if engine.dialect.name != "postgresql":
        return None
    query = text(
        "SELECT a.pid, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key AND l.objsubid = 1"
    )
    with engine.connect() as connection:
        row = connection.execute(query, {"key": key}).first()
    if row is None:
        return None
    return f"scheduler lock held by PostgreSQL backend {row.pid} from {row.client_addr or 'a local socket'}"
