"""`digestd worker`: a delivery worker, one of any number on any number of hosts, sharing
one PostgreSQL ledger (the ledger is the queue; there is no other).

A worker loops: claim a batch (`FOR UPDATE SKIP LOCKED`, under a lease), rank it as one
sparse product over the period's shared TF-IDF window, render, send, record. A
background task renews its leases and writes its heartbeat. When nothing is claimable
it polls. SIGTERM stops claiming, finishes the messages on the wire, gives the rest
back, and returns.

Losing the database: the worker stops claiming and sending at once (queued claims are
not sent), then retries with backoff. A message the server accepted whose `sent` mark
did not commit is kept in memory and recorded when the database is back; if the worker
dies first, the row stays `sending` and becomes `unknown` when its lease runs out: it
is never re-sent as if new. A row whose `sending` mark may have committed but whose
message was never handed over goes back to `pending`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from digestd.config import Settings
from digestd.delivery.batches import Job, PeriodCache
from digestd.delivery.claims import Claim, LedgerStatements, Result
from digestd.delivery.coordination import beat_worker, register_worker, release_unsent, remove_worker, renew_leases
from digestd.delivery.ledger import make_worker_id, release_claims
from digestd.delivery.send import Clock, DatabaseLoss, Sender, SendReport, StageTimes
from digestd.delivery.smtp import RateLimiter, SmtpConnection, check_security, make_tls_context
from digestd.embedding.encoder import open_encoder
from digestd.errors import ConfigError
from digestd.mail.render import EmailBuilder
from digestd.store import open_session

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0
_CACHED_WINDOWS = 8  # periods kept vectorised; planning ticks make new periods over time


@dataclass
class WorkerState:
    """What a worker keeps across rounds (a round ends when the queue is empty or the database is lost)."""

    worker: str
    report: SendReport = field(default_factory=SendReport)
    cache: PeriodCache = field(default_factory=PeriodCache)
    statements: LedgerStatements = field(default_factory=LedgerStatements)
    times: StageTimes = field(default_factory=StageTimes)
    unfinished: list[tuple[Job, Result]] = field(default_factory=list)  # sent or tried; mark not committed
    unsent: list[int] = field(default_factory=list)  # `sending` may have committed; never handed over
    started: float = field(default_factory=time.monotonic)


def require_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise ConfigError(
            f"digestd worker needs PostgreSQL; database.url is {engine.dialect.name}",
            hint="on SQLite, `digestd send` or `digestd run` delivers (one process); "
            "use postgresql+psycopg://... to run workers",
        )


@dataclass
class KeepForLater(DatabaseLoss):
    """The worker's answer to a lost database: keep what must still be written in the
    worker's state and end the round (`settle` writes it when the database is back)."""

    state: WorkerState
    lost: bool = False

    def lose(self, error: DBAPIError) -> None:
        if not self.lost:
            log.warning("database connection lost: %s; stopping this round", str(error.orig).splitlines()[0])
        self.lost = True

    def while_claiming(self, error: DBAPIError) -> None:
        self.lose(error)

    def while_marking_sending(self, claim: Claim, error: DBAPIError) -> None:
        self.lose(error)
        self.state.unsent.append(claim.delivery_id)

    def while_recording(self, job: Job, result: Result, error: DBAPIError) -> None:
        self.lose(error)
        self.state.unfinished.append((job, result))


def make_sender(
    engine: Engine, settings: Settings, builder: EmailBuilder, clock: Clock, state: WorkerState, loss: KeepForLater
) -> Sender:
    """A sender for one round, sharing the worker's id, report, caches, statements and times."""
    return Sender(
        engine,
        settings,
        builder,
        clock,
        asyncio.Event(),
        worker=state.worker,
        report=state.report,
        cache=state.cache,
        statements=state.statements,
        loss=loss,
        times=state.times,
    )


def settle(sender: Sender, state: WorkerState) -> None:
    """Write what the last database loss left pending; raises `DBAPIError` if it is still down."""
    if state.unsent:
        release_unsent(sender.engine, state.worker, state.unsent, now=sender.clock())
        state.unsent.clear()
    while state.unfinished:
        job, result = state.unfinished[0]
        sender.record(job, result)
        state.unfinished.pop(0)
    with open_session(sender.engine) as session:
        release_claims(session, worker=state.worker, now=sender.clock())


async def run_round(sender: Sender, settings: Settings, stop: asyncio.Event) -> int:
    """Claim and deliver until nothing is claimable, `stop` is set or the database is lost;
    returns how many rows were claimed."""
    tls = make_tls_context(settings.smtp)
    count = settings.smtp.connections
    queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=max(2 * count, settings.smtp.batch_size))
    limiter = RateLimiter(settings.smtp.rate_per_second)
    relay = asyncio.create_task(_relay(stop, sender.stop))
    sender.connections = [SmtpConnection(settings.smtp, tls) for _ in range(count)]
    try:
        await asyncio.gather(
            sender.produce(queue, count), *(sender.consume(queue, limiter, c) for c in sender.connections)
        )
    finally:
        relay.cancel()
    return sender.claimed


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def keep_alive(engine: Engine, state: WorkerState, clock: Clock, lease: timedelta, every: float) -> None:
    """Renew this worker's leases and write its heartbeat, every `every` seconds."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(renew_leases, engine, state.worker, now=clock(), lease=lease)
            await asyncio.to_thread(beat_worker, engine, state.worker, sent=state.report.sent, now=clock())
        except DBAPIError as error:
            log.warning("heartbeat failed: %s", str(error.orig).splitlines()[0])


async def run_worker(
    engine: Engine,
    settings: Settings,
    builder: EmailBuilder,
    *,
    clock: Clock,
    stop: asyncio.Event,
    poll_seconds: float = 5.0,
    exit_when_idle: bool = False,
) -> WorkerState:
    """Deliver until `stop` is set (or, with `exit_when_idle`, until nothing is claimable)."""
    require_postgresql(engine)
    check_security(settings.smtp)
    state = WorkerState(make_worker_id(), cache=PeriodCache(encoder=open_encoder(settings.encoder)))
    register_worker(engine, state.worker, now=clock())
    lease = timedelta(seconds=settings.smtp.lease_seconds)
    every = min(HEARTBEAT_SECONDS, settings.smtp.lease_seconds / 3)
    beating = asyncio.create_task(keep_alive(engine, state, clock, lease, every))
    log.info("worker %s started", state.worker)
    try:
        await deliver_until_stopped(engine, settings, builder, clock, state, stop, poll_seconds, exit_when_idle)
    finally:
        beating.cancel()
        await _clean_up(make_sender(engine, settings, builder, clock, state, KeepForLater(state)), state)
    return state


async def deliver_until_stopped(
    engine: Engine,
    settings: Settings,
    builder: EmailBuilder,
    clock: Clock,
    state: WorkerState,
    stop: asyncio.Event,
    poll_seconds: float,
    exit_when_idle: bool,
) -> None:
    backoff = 0.0
    while not stop.is_set():
        loss = KeepForLater(state)
        sender = make_sender(engine, settings, builder, clock, state, loss)
        try:
            await asyncio.to_thread(settle, sender, state)
        except DBAPIError as error:
            loss.lose(error)
        claimed = 0 if loss.lost else await run_round(sender, settings, stop)
        if loss.lost or state.report.errors:
            _report_errors(state)
            backoff = min(max(2 * backoff, 0.5), MAX_BACKOFF_SECONDS)
            log.info("retrying in %.1f s", backoff)
            await _sleep(stop, backoff)
            continue
        backoff = 0.0
        if len(state.cache.windows) > _CACHED_WINDOWS:
            state.cache = state.cache.fresh()
        if not claimed and not stop.is_set():
            if exit_when_idle:
                return
            state.cache = state.cache.fresh()
            await _sleep(stop, poll_seconds)


def _report_errors(state: WorkerState) -> None:
    """SMTP server trouble (e.g. it refuses connections) ends a round, not the worker."""
    for error in state.report.errors:
        log.error("delivery: %s", error.message)
    state.report.errors.clear()


async def _clean_up(sender: Sender, state: WorkerState) -> None:
    """On the way out: record what can still be recorded, give back claims, deregister."""
    try:
        await asyncio.to_thread(settle, sender, state)
        await asyncio.to_thread(remove_worker, sender.engine, state.worker)
    except DBAPIError as error:
        log.warning("could not clean up (%s)", str(error.orig).splitlines()[0])
    if state.unfinished:
        log.warning(
            "%d message(s) handed to the server were not recorded; they will show as unknown", len(state.unfinished)
        )
    log.info("worker %s stopped: %d sent", state.worker, state.report.sent)
