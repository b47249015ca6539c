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
from digestd.delivery.batches import Job, PeriodCache, load_batch
from digestd.delivery.claims import LedgerStatements, Result
from digestd.delivery.coordination import beat_worker, register_worker, release_unsent, remove_worker, renew_leases
from digestd.delivery.ledger import make_worker_id, release_claims
from digestd.delivery.send import Clock, LedgerLine, Sender, SendReport
from digestd.delivery.smtp import RateLimiter, SmtpConnection, check_security, make_tls_context
from digestd.errors import ConfigError
from digestd.mail.render import EmailBuilder, RenderedEmail
from digestd.store import open_session

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0
_CACHED_WINDOWS = 8  # periods kept vectorised; planning ticks make new periods over time


@dataclass
class WorkerTimes:
    """Seconds spent per stage (database: claims, loads and ledger writes; build: rank and render)."""

    database: float = 0.0
    build: float = 0.0
    smtp: float = 0.0


@dataclass
class WorkerState:
    """What a worker keeps across rounds (a round ends when the queue is empty or the database is lost)."""

    worker: str
    report: SendReport = field(default_factory=SendReport)
    cache: PeriodCache = field(default_factory=PeriodCache)
    statements: LedgerStatements = field(default_factory=LedgerStatements)
    times: WorkerTimes = field(default_factory=WorkerTimes)
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


class WorkerSender(Sender):
    """The `send` pipeline with the worker's bookkeeping: stage times, and a database
    loss that stops the round instead of the process."""

    state: WorkerState
    claimed: int = 0
    lost: bool = False
    handed_over: dict[str, float]  # message id → when its SMTP transaction started

    def lose(self, error: DBAPIError) -> None:
        if not self.lost:
            log.warning("database connection lost: %s; stopping this round", str(error.orig).splitlines()[0])
        self.lost = True
        self.stop.set()

    def _finish(self, job: Job, result: Result, line: LedgerLine | None = None) -> None:
        started = time.perf_counter()
        try:
            super()._finish(job, result, line)
        except DBAPIError as error:
            self.lose(error)
            self.state.unfinished.append((job, result))
        self.state.times.database += time.perf_counter() - started

    async def _transact(self, email: RenderedEmail, connection: SmtpConnection) -> Result:
        started = time.perf_counter()
        self.handed_over[email.message_id] = started
        try:
            return await super()._transact(email, connection)
        finally:
            self.state.times.smtp += time.perf_counter() - started

    async def deliver(self, job: Job, limiter: RateLimiter, connection: SmtpConnection, line: LedgerLine) -> None:
        if self.stop.is_set():
            return  # a claim taken before the stop: given back at the end of the round
        started = time.perf_counter()
        try:
            await super().deliver(job, limiter, connection, line)
        except DBAPIError as error:  # raised only by the `sending` mark: nothing was sent
            self.lose(error)
            self.state.unsent.append(job.claim.delivery_id)
        finally:  # the `sending` mark, up to the SMTP transaction (which times itself, as does _finish)
            email_id = job.email.message_id if job.email is not None else ""
            self.state.times.database += self.handed_over.pop(email_id, time.perf_counter()) - started

    async def produce(self, queue: asyncio.Queue[Job | None], connections: int) -> None:
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    claims = self.claim_batch()
                    loaded = load_batch(self.engine, claims, self.cache) if claims else []
                except DBAPIError as error:
                    self.lose(error)
                    break
                finally:
                    self.state.times.database += time.perf_counter() - started
                if not claims or not await self.learn_relay():
                    break
                self.claimed += len(claims)
                started = time.perf_counter()
                jobs = await self.build_loaded(loaded)
                self.state.times.build += time.perf_counter() - started
                await self.queue_jobs(jobs, queue)
        finally:
            for _ in range(connections):
                await queue.put(None)


def make_sender(
    engine: Engine, settings: Settings, builder: EmailBuilder, clock: Clock, state: WorkerState
) -> WorkerSender:
    """A sender for one round, sharing the worker's id, report, caches and statements."""
    sender = WorkerSender(
        engine,
        settings,
        builder,
        clock,
        asyncio.Event(),
        worker=state.worker,
        report=state.report,
        cache=state.cache,
        statements=state.statements,
    )
    sender.state = state
    sender.handed_over = {}
    return sender


def settle(sender: WorkerSender) -> None:
    """Write what the last database loss left pending; raises `DBAPIError` if it is still down."""
    state = sender.state
    if state.unsent:
        release_unsent(sender.engine, state.worker, state.unsent, now=sender.clock())
        state.unsent.clear()
    while state.unfinished:
        job, result = state.unfinished[0]
        Sender._finish(sender, job, result)
        state.unfinished.pop(0)
    with open_session(sender.engine) as session:
        release_claims(session, worker=state.worker, now=sender.clock())


async def run_round(sender: WorkerSender, settings: Settings, stop: asyncio.Event) -> int:
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
    state = WorkerState(make_worker_id())
    register_worker(engine, state.worker, now=clock())
    lease = timedelta(seconds=settings.smtp.lease_seconds)
    every = min(HEARTBEAT_SECONDS, settings.smtp.lease_seconds / 3)
    beating = asyncio.create_task(keep_alive(engine, state, clock, lease, every))
    log.info("worker %s started", state.worker)
    try:
        await deliver_until_stopped(engine, settings, builder, clock, state, stop, poll_seconds, exit_when_idle)
    finally:
        beating.cancel()
        await _clean_up(make_sender(engine, settings, builder, clock, state))
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
        sender = make_sender(engine, settings, builder, clock, state)
        try:
            await asyncio.to_thread(settle, sender)
        except DBAPIError as error:
            sender.lose(error)
        claimed = 0 if sender.lost else await run_round(sender, settings, stop)
        if sender.lost or state.report.errors:
            _report_errors(state)
            backoff = min(max(2 * backoff, 0.5), MAX_BACKOFF_SECONDS)
            log.info("retrying in %.1f s", backoff)
            await _sleep(stop, backoff)
            continue
        backoff = 0.0
        if len(state.cache.windows) > _CACHED_WINDOWS:
            state.cache = PeriodCache()
        if not claimed and not stop.is_set():
            if exit_when_idle:
                return
            state.cache = PeriodCache()
            await _sleep(stop, poll_seconds)


def _report_errors(state: WorkerState) -> None:
    """SMTP server trouble (e.g. it refuses connections) ends a round, not the worker."""
    for error in state.report.errors:
        log.error("delivery: %s", error.message)
    state.report.errors.clear()


async def _clean_up(sender: WorkerSender) -> None:
    """On the way out: record what can still be recorded, give back claims, deregister."""
    state = sender.state
    try:
        await asyncio.to_thread(settle, sender)
        await asyncio.to_thread(remove_worker, sender.engine, state.worker)
    except DBAPIError as error:
        log.warning("could not clean up (%s)", str(error.orig).splitlines()[0])
    if state.unfinished:
        log.warning(
            "%d message(s) handed to the server were not recorded; they will show as unknown", len(state.unfinished)
        )
    log.info("worker %s stopped: %d sent", state.worker, state.report.sent)
