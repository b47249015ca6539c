"""`digestd run`: APScheduler wiring only. The jobs are functions of the other modules.

- one ingest job per source, on the source's cron line (UTC);
- a planning tick every minute: plans the subscribers whose `next_due_at` has passed and
  delivers what is claimable (no job per subscriber; after downtime the planner makes one
  catch-up digest per subscriber, never one per missed period);
- a daily purge of sign-ups never confirmed and of never-twice records older than
  `digest.remember_sent_days`;
- the web pages, in the same event loop.

On PostgreSQL several daemons may run: the jobs above run only on the node holding the
scheduler advisory lock (`coordination.SchedulerLock`); the others serve the web pages
and take over when that node's connection goes away.

SIGTERM/SIGINT stop the scheduler, let in-flight sends finish (bounded by
`STOP_GRACE_SECONDS`), stop the web server, and return.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlmodel import select

from digestd.config import Settings
from digestd.delivery.coordination import SchedulerLock
from digestd.delivery.ledger import forget_sent_papers
from digestd.delivery.send import SendReport, plan_due, send_due
from digestd.errors import ConfigError, DigestdError
from digestd.ingest.run import make_fetcher, run_sources
from digestd.ingest.sources.fetch import Fetcher
from digestd.mail.render import EmailBuilder
from digestd.models import SourceState
from digestd.store import open_session
from digestd.web.signup import purge_unconfirmed

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
STOP_GRACE_SECONDS = 60.0
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
        """Run one source (in a thread: fetching blocks) and log one line."""
        if not self._leads(f"ingest {name}"):
            return
        self._track()
        if self.fetcher is None:
            self.fetcher = make_fetcher(self.settings.ingest)
        reports = await asyncio.to_thread(
            run_sources, self.engine, self.settings, names=[name], now=self.clock(), fetcher=self.fetcher
        )
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

    async def catch_up_ingest(self) -> None:
        """Run, now, each source whose last scheduled run was missed (or that never ran),
        so a daemon that was down at 01:30 does not wait a day for the papers."""
        if not self._leads("catch-up ingest"):
            return
        with open_session(self.engine) as session:
            last_runs = {state.name: state.last_run_at for state in session.scalars(select(SourceState))}
        now = self.clock()
        for source in self.settings.sources:
            last = last_runs.get(source.name)
            trigger = cron_trigger(source.schedule, source=source.name)
            due = last is None or (trigger.get_next_fire_time(None, last) or now) <= now
            if due and not self.stop.is_set():
                log.info("ingest %s: catching up a missed run", source.name)
                await self.ingest(source.name)

    async def wait_for_running(self, grace_seconds: float) -> None:
        """Let in-flight jobs finish; after `grace_seconds`, cancel what is left."""
        others = {task for task in self.running if task is not asyncio.current_task()}
        if not others:
            return
        log.info("waiting up to %.0f s for %d running job(s)", grace_seconds, len(others))
        _, pending = await asyncio.wait(others, timeout=grace_seconds)
        for task in pending:
            task.cancel()


def cron_trigger(line: str, *, source: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(line, timezone=UTC)
    except ValueError as error:
        raise ConfigError(
            f"sources[{source}].schedule = {line!r} is not allowed: {error}",
            hint='use a cron line such as "30 1 * * mon-fri" (minute hour day month weekday, UTC)',
        ) from None


def build_scheduler(jobs: DaemonJobs) -> AsyncIOScheduler:
    """An AsyncIOScheduler with a memory job store: ingest per source, the tick, the purge."""
    scheduler = AsyncIOScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
    )
    for source in jobs.settings.sources:
        trigger = cron_trigger(source.schedule, source=source.name)
        scheduler.add_job(jobs.ingest, trigger, args=[source.name], id=f"ingest:{source.name}")
    scheduler.add_job(jobs.tick, IntervalTrigger(seconds=TICK_SECONDS), id="tick", next_run_time=jobs.clock())
    scheduler.add_job(jobs.purge, CronTrigger(hour=3, minute=17, timezone=UTC), id="purge")
    return scheduler
