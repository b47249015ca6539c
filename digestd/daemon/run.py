"""The daemon's main coroutine: lock, scheduler, web, and an orderly stop."""

from __future__ import annotations

import asyncio
import logging

from digestd import api
from digestd.config import Settings
from digestd.daemon.process import hold_daemon_lock, install_stop_signals
from digestd.daemon.scheduler import STOP_GRACE_SECONDS, DaemonJobs, build_scheduler
from digestd.delivery.coordination import SchedulerLock
from digestd.mail.render import make_email_builder
from digestd.mail.tokens import check_secret_key
from digestd.web.mailer import make_smtp_sender
from digestd.web.server import bind_socket, serve_web

log = logging.getLogger(__name__)


async def run_daemon(settings: Settings, *, deliver: bool = True, web: bool = True) -> None:
    """Run until SIGTERM/SIGINT. Refuses to start beside another daemon on the same SQLite file;
    on PostgreSQL, several may run and one at a time ingests and plans (the scheduler lock)."""
    with hold_daemon_lock(settings.database_url):
        engine = api.open_database(settings)
        secret_key = check_secret_key(settings.secret_key)
        sock = bind_socket(settings.web.bind) if web else None  # fail now, not later, on a busy port
        stop = asyncio.Event()
        install_stop_signals(asyncio.get_running_loop(), stop)
        jobs = DaemonJobs(
            engine,
            settings,
            make_email_builder(settings.mail, secret_key=secret_key, web=settings.web),
            stop,
            deliver=deliver,
            catch_up_wait=settings.ingest.catch_up_wait_seconds,
        )
        if engine.dialect.name == "postgresql":
            jobs.lock = SchedulerLock(engine)
        scheduler = build_scheduler(jobs, catch_up=jobs.plan_catch_up())
        # The web pages and the tick start at once; the catch-up ingest runs beside them as jobs.
        web_task = None
        if sock is not None:
            sender = make_smtp_sender(settings.smtp)
            web_task = asyncio.create_task(serve_web(settings, engine, send_message=sender, stop_event=stop, sock=sock))
        scheduler.start()
        log.info(
            "digestd running: %d source(s), delivery %s, web %s",
            len(settings.sources),
            "on" if deliver else "off (workers deliver)",
            settings.web.bind if web else "off",
        )
        try:
            await stop.wait()
        finally:
            # No job starts after the stop and the running ones finish (a message in DATA
            # gets its answer and is recorded) before the scheduler shuts down: APScheduler's
            # asyncio executor cancels the jobs still running when it shuts down.
            scheduler.pause()
            await jobs.wait_for_running(STOP_GRACE_SECONDS)
            scheduler.shutdown(wait=False)
            if web_task is not None:
                await web_task
            if jobs.lock is not None:
                jobs.lock.release()
            engine.dispose()
            log.info("digestd stopped")
