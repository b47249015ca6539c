"""Deliver what is due: plan ledger rows, claim them in batches, build and render each
batch's digests, and send them over N SMTP connections under one rate limit.

A batch is grouped by period, so subscribers who share a period share one
`prepare_window`. SIGTERM (or `stop`) ends claiming; messages already on the wire are
finished, claims not yet started go back to `pending`, and the run returns normally.
A lost database is handed to the `Sender`'s `DatabaseLoss`: by default the run fails with
the error (`digestd send`); `digestd worker` passes one that ends only the round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from digestd import api
from digestd.config import Settings
from digestd.delivery.batches import Job, PeriodBatch, PeriodCache, RenderPool, build_jobs, can_share, load_batch
from digestd.delivery.claims import Claim, LedgerStatements, Result, claim_deliveries, finish_delivery, mark_sending
from digestd.delivery.ledger import (
    PERM_FAILED,
    SENT,
    SKIPPED,
    TEMP_FAILED,
    UNKNOWN,
    count_claimable,
    due_schedules,
    load_previous_ends,
    make_worker_id,
    plan_deliveries,
    plan_period,
    release_claims,
)
from digestd.delivery.smtp import RETRY, RateLimiter, SmtpConnection, check_security, make_tls_context
from digestd.embedding.encoder import Encoder, open_encoder
from digestd.errors import DeliveryError
from digestd.mail.render import EmailBuilder, RenderedEmail
from digestd.models import Subscriber
from digestd.records import ACTIVE
from digestd.store import open_session
from digestd.subscribers import get_subscriber

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def update(self, status: str) -> None: ...


NOTHING_MATCHED = "nothing matched (mail.send_empty is off)"
_RETRIES_BEFORE_DATA = 2


@dataclass
class SendReport:
    planned: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    errors: list[DeliveryError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"sent {self.sent}, retrying {self.retrying}, failed {self.failed}, "
            f"unknown {self.unknown}, skipped {self.skipped} ({self.planned} newly planned)"
        )

    def add(self, status: str) -> None:
        name = {SENT: "sent", TEMP_FAILED: "retrying", PERM_FAILED: "failed", UNKNOWN: "unknown"}.get(status, "skipped")
        setattr(self, name, getattr(self, name) + 1)


def choose_subscribers(session: Session, *, now: datetime, emails: Sequence[str]) -> list[Subscriber]:
    """The named subscribers (whatever their status), or the active ones due now."""
    if emails:
        return [get_subscriber(session, email) for email in emails]
    return api.due_subscribers(session, now)


def plan_due(engine: Engine, *, now: datetime, emails: Sequence[str] = ()) -> int:
    """Insert the ledger rows of due subscribers (or of the named active ones, due or not)."""
    with open_session(engine, immediate=True) as session:
        if not emails:
            return plan_deliveries(session, now=now, subscribers=due_schedules(session, now), forced=False)
        subscribers = [s for s in choose_subscribers(session, now=now, emails=emails) if s.status == ACTIVE]
        return plan_deliveries(session, now=now, subscribers=subscribers, forced=True)


@dataclass
class StageTimes:
    """Seconds a run spent per stage: database (claiming and loading batches, ledger writes),
    build (rank and render) and SMTP (transactions; connections overlap)."""

    database: float = 0.0
    build: float = 0.0
    smtp: float = 0.0

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, stage, getattr(self, stage) + time.perf_counter() - started)


class DatabaseLoss:
    """What a `Sender` does when a step fails because the database is gone (`DBAPIError`).

    This default lets the error end the run, as `digestd send` wants: its claims are given
    back at the end (or expire), and a row left `sending` becomes `unknown`. `digestd
    worker` passes its own (see `worker.py`) that keeps what must still be written and ends
    only the round. When a method returns instead of raising, the run stops claiming and
    sending, and finishes as on SIGTERM."""

    def while_claiming(self, error: DBAPIError) -> None:
        """Claiming or loading a batch failed; claims it may hold are given back at the end."""
        raise error

    def while_marking_sending(self, claim: Claim, error: DBAPIError) -> None:
        """The `sending` mark failed, so nothing was handed over, though the mark may have committed."""
        raise error

    def while_recording(self, job: Job, result: Result, error: DBAPIError) -> None:
        """Recording how a delivery ended failed (for `sent`: the server has the message)."""
        raise error


class LedgerLine:
    """The database connection of one SMTP connection's per-message ledger writes, held for
    the run: checking one out of the pool per write would add the pool's ping, another
    round trip, to every message. Dropped after an error (the next write reconnects)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection | None = None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        if self.connection is None:
            self.connection = self.engine.connect()
        try:
            with self.connection.begin():
                yield self.connection
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()


@dataclass
class Sender:
    """One run of `digestd send`: the shared state of the producer and the connections."""

    engine: Engine
    settings: Settings
    builder: EmailBuilder
    clock: Clock
    stop: asyncio.Event
    subscriber_ids: list[int] | None = None
    resend_unknown: bool = False
    progress: Progress | None = None
    worker: str = field(default_factory=make_worker_id)
    report: SendReport = field(default_factory=SendReport)
    cache: PeriodCache = field(default_factory=PeriodCache)
    statements: LedgerStatements = field(default_factory=LedgerStatements)
    pool: RenderPool | None = None  # ranks and renders in other processes; None: here, in a thread
    connections: list[SmtpConnection] = field(default_factory=list)
    relay_known: bool = False  # whether `builder` is set for what the relay offers (8BITMIME)
    loss: DatabaseLoss = field(default_factory=DatabaseLoss)
    times: StageTimes = field(default_factory=StageTimes)
    claimed: int = 0

    def __post_init__(self) -> None:
        # The per-message writes that are one statement (the `sending` mark, and `sent` on
        # PostgreSQL) run in autocommit there: BEGIN and COMMIT would be two more round
        # trips per write (measured with `sent` in claims.py). SQLite is in-process: a
        # transaction costs nothing there, and `sent` needs one (three statements).
        postgresql = self.engine.dialect.name == "postgresql"
        self.single_writes = self.engine.execution_options(isolation_level="AUTOCOMMIT") if postgresql else self.engine

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.smtp.lease_seconds)

    @property
    def batch_limit(self) -> int:
        """`smtp.batch_size`, but no more than a quarter of a lease's worth at the rate limit,
        so claims do not expire while they wait for their turn."""
        smtp = self.settings.smtp
        return max(1, min(smtp.batch_size, int(smtp.rate_per_second * smtp.lease_seconds / 4)))

    def _finish(self, job: Job, result: Result, line: LedgerLine | None = None) -> None:
        """Record how a delivery ended; a lost database goes to `self.loss`."""
        try:
            self.record(job, result, line)
        except DBAPIError as error:
            self.loss.while_recording(job, result, error)
            self.stop.set()

    def record(self, job: Job, result: Result, line: LedgerLine | None = None) -> None:
        """Write how a delivery ended and count it; raises `DBAPIError` if the database is lost."""
        paper_ids = job.email.paper_ids if job.email is not None else ()
        retry_for = timedelta(hours=self.settings.smtp.retry_for_hours)
        # The common case, `sent`, goes through the connection's held line (one statement on
        # PostgreSQL, see `record_sent`); the rare others get a transaction of their own.
        common = result.status == SENT and not result.suppress
        writes = line.begin() if line is not None and common else self.engine.begin()
        with self.times.timing("database"), writes as db:
            status = finish_delivery(
                db,
                job.claim,
                result,
                now=self.clock(),
                retry_for=retry_for,
                paper_ids=paper_ids,
                statements=self.statements,
            )
        if status != SENT:
            log.info(
                "delivery %s to subscriber %s: %s %s",
                job.claim.delivery_id,
                job.claim.subscriber_id,
                status,
                result.reason,
            )
        self._count(status)

    def _count(self, status: str) -> None:
        self.report.add(status)
        if self.progress is not None:
            self.progress.update(status)

    def claim_batch(self) -> list[Claim]:
        with open_session(self.engine, immediate=True) as session:
            claims, skipped = claim_deliveries(
                session,
                worker=self.worker,
                now=self.clock(),
                lease=self.lease,
                limit=self.batch_limit,
                subscriber_ids=self.subscriber_ids,
                resend_unknown=self.resend_unknown,
            )
        for _ in range(skipped):
            self._count(SKIPPED)
        return claims

    async def take_batch(self) -> tuple[list[Claim], list[PeriodBatch] | None]:
        """Claim a batch and load it, unless the render pool is to load it. Loading runs in a thread:
        with a sentence encoder it may embed papers for minutes (the first send after `[encoder]
        model` is set), and the SMTP consumers and a worker's lease heartbeat must go on meanwhile."""
        with self.times.timing("database"):
            claims = self.claim_batch()
            if not claims or self.pool is not None:
                return claims, None
            return claims, await asyncio.to_thread(load_batch, self.engine, claims, self.cache)

    async def produce(self, queue: asyncio.Queue[Job | None], connections: int) -> None:
        try:
            while not self.stop.is_set():
                try:
                    claims, loaded = await self.take_batch()
                except DBAPIError as error:
                    self.loss.while_claiming(error)
                    self.stop.set()
                    break
                if not claims or not await self.learn_relay():
                    break
                self.claimed += len(claims)
                with self.times.timing("build"):
                    jobs = await self.build_batch(claims, loaded)
                await self.queue_jobs(jobs, queue)
        finally:
            for _ in range(connections):
                await queue.put(None)

    async def learn_relay(self) -> bool:
        """Before the first batch is rendered, connect the first connection: the text part
        is 8bit only if the relay offers 8BITMIME. False (and the run stops) if it cannot
        be reached; the claims go back at the end of the run."""
        if self.relay_known or not self.connections:
            return True
        first = self.connections[0]
        try:
            if not first.connected:
                await first.connect()
        except DeliveryError as error:
            self.report.errors.append(error)
            self.stop.set()
            return False
        self.builder = self.builder.for_relay(eight_bit=first.eight_bit)
        self.relay_known = True
        return True

    async def build_batch(self, claims: list[Claim], loaded: list[PeriodBatch] | None) -> list[Job]:
        """Rank and render a claimed batch: in the render pool if there is one (which loads
        it too), else the `loaded` batch here. While it is built, the connections send the
        previous batch from the queue."""
        if self.pool is not None:
            send_empty, eight_bit = self.settings.mail.send_empty, self.builder.eight_bit
            return await self.pool.build(claims, now=self.clock(), send_empty=send_empty, eight_bit=eight_bit)
        assert loaded is not None
        return await self.build_loaded(loaded)

    async def build_loaded(self, loaded: list[PeriodBatch]) -> list[Job]:
        """Rank and render a loaded batch, in a thread (it is CPU work)."""
        send_empty = self.settings.mail.send_empty
        return await asyncio.to_thread(
            build_jobs, self.builder, loaded, self.cache, now=self.clock(), send_empty=send_empty
        )

    async def queue_jobs(self, jobs: list[Job], queue: asyncio.Queue[Job | None]) -> None:
        """Queue the emails for the connections; a digest with nothing in it is finished as
        skipped, one that could not be built as failed (the others go on)."""
        for job in jobs:
            if job.failure:
                log.warning(
                    "delivery %s to subscriber %s: %s", job.claim.delivery_id, job.claim.subscriber_id, job.failure
                )
                self._finish(job, Result(PERM_FAILED, job.failure))
            elif job.email is None:
                self._finish(job, Result(SKIPPED, NOTHING_MATCHED))
            else:
                await queue.put(job)

    async def consume(self, queue: asyncio.Queue[Job | None], limiter: RateLimiter, connection: SmtpConnection) -> None:
        line = LedgerLine(self.single_writes)
        try:
            while (job := await queue.get()) is not None:
                if self.stop.is_set():
                    continue  # its claim is released at the end of the run
                await self.deliver(job, limiter, connection, line)
        except DeliveryError as error:
            self.report.errors.append(error)
            self.stop.set()
            while (await queue.get()) is not None:
                pass
        finally:
            line.close()
            await connection.quit()

    async def deliver(self, job: Job, limiter: RateLimiter, connection: SmtpConnection, line: LedgerLine) -> None:
        email = job.email
        assert email is not None
        await limiter.wait()
        if not connection.connected:
            await connection.connect()  # a failure here leaves the claim to be released
        try:
            with self.times.timing("database"), line.begin() as db:
                marked = mark_sending(
                    db,
                    job.claim,
                    worker=self.worker,
                    now=self.clock(),
                    lease=self.lease,
                    message_id=email.message_id,
                    paper_ids=email.paper_ids,
                    sections=email.sections,
                    statements=self.statements,
                )
        except DBAPIError as error:
            self.loss.while_marking_sending(job.claim, error)
            self.stop.set()
            return
        if not marked:
            log.warning("lost the claim on delivery %s; not sending it", job.claim.delivery_id)
            return
        try:
            with self.times.timing("smtp"):
                result = await self._transact(email, connection)
        except asyncio.CancelledError:  # the stop's grace ran out: record what is known, never leave `sending`
            self._finish(job, connection.cut_off_result(), line)
            raise
        self._finish(job, result, line)

    async def _transact(self, email: RenderedEmail, connection: SmtpConnection) -> Result:
        """Send, retrying at once on a new connection when it dropped before DATA."""
        result = Result(RETRY)
        for _ in range(1 + _RETRIES_BEFORE_DATA):
            try:
                result = await connection.send(email)
            except DeliveryError as error:
                return Result(TEMP_FAILED, f"reconnecting failed: {error.message}")
            if result.status != RETRY:
                return result
        return Result(TEMP_FAILED, result.reason)


async def send_due(
    engine: Engine,
    settings: Settings,
    builder: EmailBuilder,
    *,
    clock: Clock,
    stop: asyncio.Event,
    emails: Sequence[str] = (),
    resend_unknown: bool = False,
    progress: Progress | None = None,
    report: SendReport | None = None,
) -> SendReport:
    """Plan and deliver everything due (or the named subscribers' digests) until nothing
    is left to claim, or `stop` is set. Raises `DeliveryError` if the server cannot be used;
    `report` (if given) then still says what was sent before."""
    check_security(settings.smtp)
    tls = make_tls_context(settings.smtp)
    planned = plan_due(engine, now=clock(), emails=emails)
    ids = None
    if emails:
        with open_session(engine) as session:
            ids = [s.id for s in choose_subscribers(session, now=clock(), emails=emails) if s.id is not None]
    sender = Sender(
        engine, settings, builder, clock, stop, ids, resend_unknown, progress, report=report or SendReport()
    )
    sender.cache = PeriodCache(encoder=open_encoder(settings.encoder))  # the model, once loaded, stays loaded
    sender.report.planned = planned
    with open_session(engine) as session:
        claimable = count_claimable(session, now=clock(), subscriber_ids=ids, resend_unknown=resend_unknown)
    if progress is not None:
        progress.start(claimable)
    sender.pool = make_render_pool(engine, settings, claimable)
    count = settings.smtp.connections
    queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=max(2 * count, settings.smtp.batch_size))
    limiter = RateLimiter(settings.smtp.rate_per_second)
    sender.connections = [SmtpConnection(settings.smtp, tls) for _ in range(count)]
    try:
        await asyncio.gather(
            sender.produce(queue, count), *(sender.consume(queue, limiter, c) for c in sender.connections)
        )
    finally:
        if sender.pool is not None:
            sender.pool.close()
        with open_session(engine) as session:
            release_claims(session, worker=sender.worker, now=clock())
    if sender.report.errors:
        raise sender.report.errors[0]
    return sender.report


def make_render_pool(engine: Engine, settings: Settings, claimable: int) -> RenderPool | None:
    """The render processes `smtp.render_processes` asks for, when the run is worth their
    start-up (more than one batch) and they can open the database."""
    processes = settings.smtp.render_processes
    if processes == 0 or claimable <= settings.smtp.batch_size:
        return None
    if not can_share(engine):
        log.info("smtp.render_processes ignored: an in-memory database cannot be opened by other processes")
        return None
    return RenderPool(engine, settings, processes)


def preview_due(
    engine: Engine,
    builder: EmailBuilder,
    *,
    now: datetime,
    emails: Sequence[str] = (),
    send_empty: bool = False,
    encoder: Encoder | None = None,
) -> list[Job]:
    """The digests `send` would deliver now, rendered; nothing is written (--dry-run) but
    the vectors `encoder` makes (the send would store them too)."""
    with open_session(engine) as session:
        subscribers = choose_subscribers(session, now=now, emails=emails)
        previous = load_previous_ends(session, [s.id for s in subscribers if s.id is not None])
        claims = []
        for s in subscribers:
            assert s.id is not None
            period = plan_period(s, now, previous_end=previous.get(s.id), forced=bool(emails))
            claims.append(Claim(0, s.id, s.email, period.key, period.start, period.end, now))
    cache = PeriodCache(encoder=encoder)
    return build_jobs(builder, load_batch(engine, claims, cache), cache, now=now, send_empty=send_empty)
