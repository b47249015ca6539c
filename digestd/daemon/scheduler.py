"""`digestd run`: APScheduler wiring only. The jobs are functions of the other modules.

- one ingest job per source, on the source's cron line (UTC); a source whose last
  scheduled run was missed (or that never ran) runs at once as well: the catch-up;
- a planning tick every minute: plans the subscribers whose `next_due_at` has passed and
  delivers what is claimable (no job per subscriber; after downtime the planner makes one
  catch-up digest per subscriber, never one per missed period);
- a daily purge of sign-ups never confirmed and of never-twice records older than
  `digest.remember_sent_days`;
- the web pages, in the same event loop.

The web pages and the tick start at once; the catch-up runs as jobs beside them. The first
tick waits for it (at most `[ingest] catch_up_wait_seconds`), so a digest after downtime has the
papers the daemon missed, and a slow feed holds back no digest longer than that.

On PostgreSQL several daemons may run: the jobs above run only on the node holding the
scheduler advisory lock (`coordination.SchedulerLock`); the others serve the web pages
and take over when that node's connection goes away.

SIGTERM/SIGINT: no job starts any more, no new claims are made, messages in flight finish
and are recorded (bounded by `STOP_GRACE_SECONDS`), then the scheduler shuts down. An
ingest job does not hold up the stop (`run_unless_stopped`): a source run saves all or
nothing, and the next start catches up one that was cut off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ParamSpec, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import undefined
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from digestd.config import Settings
from digestd.delivery.coordination import SchedulerLock
from digestd.delivery.ledger import forget_sent_papers
from digestd.delivery.send import SendReport, plan_due, send_due
from digestd.embedding.encoder import Encoder, open_encoder
from digestd.errors import ConfigError, DigestdError
from digestd.ingest.run import make_fetcher, run_sources
from digestd.ingest.sources.fetch import Fetcher
from digestd.mail.render import EmailBuilder
from digestd.models import SourceState
from digestd.store import open_session
from digestd.web.signup import purge_unconfirmed

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Params = ParamSpec("Params")
Result = TypeVar("Result")
STOP_GRACE_SECONDS = 60.0  # within the systemd unit's TimeoutStopSec=90
TICK_SECONDS = 60


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class DaemonJobs:
    """The scheduled jobs, bound to one engine, one set of settings and one stop event."""

    engine: Engine
    settings: Settings
    builder: EmailBuilder
    stop: asyncio.Event
    clock: Clock = utc_now
    deliver: bool = True
    running: set[asyncio.Task[object]] = field(default_factory=set)
    lock: SchedulerLock | None = None  # PostgreSQL: only the node holding it ingests and plans
    # One fetcher for every source job of the process, so the per-host spacing (arXiv: 3 s,
    # one connection) holds across sources; made at the first ingest. It keeps no connection open.
    fetcher: Fetcher | None = None
    # The sentence encoder (`[encoder]`) ingest embeds new papers with, made at the first
    # ingest; its model loads when a first paper needs it, and stays loaded.
    encoder: Encoder | None = None
    catching_up: set[str] = field(default_factory=set)  # sources whose catch-up run has not ended
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)  # set when `catching_up` empties
    catch_up_wait: float = 20.0  # seconds; `[ingest] catch_up_wait_seconds` in the daemon

    def _leads(self, job: str) -> bool:
        """True when this node may run `job` now (always, without a lock)."""
        if self.lock is None or self.lock.held():
            return True
        log.debug("%s: skipped, another node holds the scheduler lock", job)
        return False

    def not_stopping(self) -> bool:
        """Not stopping (read from a job's thread too: a plain flag read)."""
        return not self.stop.is_set()

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def ingest(self, name: str) -> None:
        """Run one source (in a thread: fetching blocks) and log one line; a stop cuts it off."""
        try:
            if self.stop.is_set() or not self._leads(f"ingest {name}"):
                return
            self._track()
            if self.fetcher is None:
                self.fetcher = make_fetcher(self.settings.ingest)
            if self.encoder is None:
                self.encoder = open_encoder(self.settings.encoder)
            reports = await run_unless_stopped(
                self.stop,
                run_sources,
                self.engine,
                self.settings,
                names=[name],
                now=self.clock(),
                fetcher=self.fetcher,
                encoder=self.encoder,
            )
        finally:
            self._caught_up_with(name)
        if reports is None:
            log.info("ingest %s: cut off by the stop (a run saves all or nothing; the next start catches up)", name)
            return
        for report in reports:
            outcome = f"failed: {report.error}" if report.error else "ok"
            log.info(
                "ingest %s: %s, %d read, %d new, %d updated", name, outcome, report.seen, report.new, report.updated
            )

    async def tick(self) -> None:
        """Plan what is due and deliver it; one log line with the counts."""
        if self.stop.is_set() or not self._leads("tick"):
            return
        self._track()
        await self._wait_for_catch_up()
        if self.stop.is_set():
            return
        report = SendReport()
        try:
            if not self.deliver:
                planned = await asyncio.to_thread(plan_due, self.engine, now=self.clock())
                log.info("tick: %d planned (delivery left to workers)", planned)
                return
            await send_due(self.engine, self.settings, self.builder, clock=self.clock, stop=self.stop, report=report)
        except DigestdError as error:
            log.error("tick: delivery stopped: %s (before that: %s)", error.message, report.summary())
            return
        log.info(
            "tick: %d planned, %d sent, %d retrying, %d failed, %d unknown, %d skipped",
            report.planned,
            report.sent,
            report.retrying,
            report.failed,
            report.unknown,
            report.skipped,
        )

    async def poll_bounces(self) -> None:
        """Read the IMAP mailbox of `bounces.imap_url` (README, "Bounces"); one log line."""
        from digestd.bounces.mailboxes import poll_imap

        if self.stop.is_set() or not self._leads("bounces"):
            return
        self._track()
        try:
            report = await asyncio.to_thread(poll_imap, self.engine, self.settings, clock=self.clock)
        except (DigestdError, SQLAlchemyError) as error:  # the unread messages stay unseen for the next poll
            log.error("bounces: the IMAP mailbox was not read to the end: %s", str(error).splitlines()[0])
            return
        log.info("bounces: %s", report.summary())

    async def purge(self) -> None:
        if not self._leads("purge"):
            return
        self._track()
        now = self.clock()
        with open_session(self.engine) as session:
            purged = purge_unconfirmed(session, now)
        log.info("purge: %d unconfirmed sign-up(s) older than 30 days deleted", purged)
        days = self.settings.digest.remember_sent_days
        if days:
            forgotten = await asyncio.to_thread(
                forget_sent_papers, self.engine, before=now - timedelta(days=days), keep_going=self.not_stopping
            )
            log.info("purge: %d record(s) of papers sent more than %d days ago deleted", forgotten, days)

    def plan_catch_up(self) -> set[str]:
        """The sources whose last scheduled run was missed (or that never ran): they run at
        start, so a daemon that was down at 01:30 does not wait a day for the papers."""
        with open_session(self.engine) as session:
            last_runs = {state.name: state.last_run_at for state in session.scalars(select(SourceState))}
        now = self.clock()
        for source in self.settings.sources:
            last = last_runs.get(source.name)
            trigger = cron_trigger(source.schedule, source=source.name)
            if last is None or (trigger.get_next_fire_time(None, last) or now) <= now:
                log.info("ingest %s: catching up a missed run", source.name)
                self.catching_up.add(source.name)
        return set(self.catching_up)

    def _caught_up_with(self, name: str) -> None:
        self.catching_up.discard(name)
        if not self.catching_up:
            self.caught_up.set()

    async def _wait_for_catch_up(self) -> None:
        """Until the catch-up ingest has ended, at most `catch_up_wait` seconds, or the stop."""
        if not self.catching_up:
            return
        log.info("tick: waiting up to %.0f s for the catch-up ingest", self.catch_up_wait)
        waits = {asyncio.ensure_future(self.caught_up.wait()), asyncio.ensure_future(self.stop.wait())}
        try:
            await asyncio.wait(waits, timeout=self.catch_up_wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.catching_up and not self.stop.is_set():
            log.info("tick: not waiting any longer for the catch-up of %s", ", ".join(sorted(self.catching_up)))
            self.catching_up.clear()  # later ticks do not wait either

    async def wait_for_running(self, grace_seconds: float) -> None:
        """Let in-flight jobs finish; after `grace_seconds`, cancel what is left."""
        deadline = asyncio.get_running_loop().time() + grace_seconds
        await asyncio.sleep(0)  # a job handed to the loop just before the stop has started (and is tracked)
        while others := {task for task in self.running if task is not asyncio.current_task()}:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning("%d job(s) still running after %.0f s: cancelling them", len(others), grace_seconds)
                for task in others:
                    task.cancel()
                return
            log.info("waiting up to %.0f s for %d running job(s)", left, len(others))
            await asyncio.wait(others, timeout=left)


async def run_unless_stopped(
    stop: asyncio.Event, work: Callable[Params, Result], /, *args: Params.args, **kwargs: Params.kwargs
) -> Result | None:
    """`work(*args, **kwargs)` in a thread; its result, or None as soon as `stop` is set.

    For blocking work a stop must not wait for (a fetch from a server that hangs or drips
    cannot be interrupted): the thread is a daemon thread, so when the stop comes it is
    left to itself and the process still exits. Only for work that is safe to cut off
    anywhere, such as a source run (it saves all or nothing, in one transaction)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Result] = loop.create_future()

    def settle(result: Result | None, error: BaseException | None) -> None:
        if outcome.done():  # given up on at the stop
            return
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            report = partial(settle, work(*args, **kwargs), None)
        except BaseException as error:  # handed to the awaiting coroutine, which raises it
            report = partial(settle, None, error)
        with suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(report)

    threading.Thread(target=run, name=f"digestd {getattr(work, '__name__', 'work')}", daemon=True).start()
    stopping = asyncio.ensure_future(stop.wait())
    either: set[asyncio.Future[Any]] = {outcome, stopping}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        outcome.cancel()  # still running: given up on (a no-op when it has finished)
    return None if outcome.cancelled() else outcome.result()


def cron_trigger(line: str, *, source: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(line, timezone=UTC)
    except ValueError as error:
        raise ConfigError(
            f"sources[{source}].schedule = {line!r} is not allowed: {error}",
            hint='use a cron line such as "30 1 * * mon-fri" (minute hour day month weekday, UTC)',
        ) from None


def build_scheduler(jobs: DaemonJobs, *, catch_up: Collection[str] = ()) -> AsyncIOScheduler:
    """An AsyncIOScheduler with a memory job store: ingest per source (those in `catch_up`
    run at once, then on their cron line), the tick (at once, then every minute), the purge."""
    scheduler = AsyncIOScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
    )
    for source in jobs.settings.sources:
        trigger = cron_trigger(source.schedule, source=source.name)
        first = jobs.clock() if source.name in catch_up else undefined
        scheduler.add_job(jobs.ingest, trigger, args=[source.name], id=f"ingest:{source.name}", next_run_time=first)
    scheduler.add_job(jobs.tick, IntervalTrigger(seconds=TICK_SECONDS), id="tick", next_run_time=jobs.clock())
    scheduler.add_job(jobs.purge, CronTrigger(hour=3, minute=17, timezone=UTC), id="purge")
    if jobs.settings.bounces.imap_url:
        every = IntervalTrigger(minutes=jobs.settings.bounces.poll_minutes)
        scheduler.add_job(jobs.poll_bounces, every, id="bounces", next_run_time=jobs.clock())
    return scheduler
