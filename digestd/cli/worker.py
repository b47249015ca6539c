"""`digestd worker`: a delivery worker (scale-out on PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from digestd.cli import AppContext, pass_app
from digestd.daemon.process import configure_logging, install_stop_signals, tune_collector
from digestd.mail.tokens import check_secret_key

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from digestd.delivery.worker import WorkerState


def _clock() -> datetime:
    return datetime.now(UTC)


async def _work(app: AppContext, engine: Engine, poll_seconds: float, exit_when_idle: bool) -> WorkerState:
    import asyncio

    from digestd.delivery.worker import run_worker
    from digestd.mail.render import make_email_builder

    settings = app.settings
    builder = make_email_builder(settings.mail, secret_key=check_secret_key(settings.secret_key), web=settings.web)
    stop = asyncio.Event()
    install_stop_signals(asyncio.get_running_loop(), stop)
    return await run_worker(
        engine, settings, builder, clock=_clock, stop=stop, poll_seconds=poll_seconds, exit_when_idle=exit_when_idle
    )


def summarise(state: WorkerState) -> dict[str, object]:
    seconds = time.monotonic() - state.started
    report, times = state.report, state.times
    return {
        "worker": state.worker,
        "sent": report.sent,
        "retrying": report.retrying,
        "failed": report.failed,
        "unknown": report.unknown,
        "skipped": report.skipped,
        "seconds": round(seconds, 2),
        "messages_per_second": round(report.sent / seconds, 1) if seconds else 0.0,
        "database_seconds": round(times.database, 2),
        "build_seconds": round(times.build, 2),
        "smtp_seconds": round(times.smtp, 2),
    }


@click.command()
@click.option(
    "--poll", "poll_seconds", type=float, default=5.0, show_default=True, help="Seconds between polls when idle."
)
@click.option("--exit-when-idle", is_flag=True, help="Exit once nothing is left to claim (batch jobs, benchmarks).")
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")
@pass_app
def worker(app: AppContext, poll_seconds: float, exit_when_idle: bool, as_json: bool) -> None:
    """Deliver planned digests: claim ledger rows in batches (FOR UPDATE SKIP LOCKED, under
    a lease), rank, render and send them. Run any number, on any number of hosts, against
    one PostgreSQL database, beside `digestd run --no-deliver` (which plans). SIGTERM stops
    claiming, lets messages in flight finish, and exits 0. Needs PostgreSQL.

    \b
    Example:
      DIGESTD_SECRET_KEY=... digestd --config /etc/digestd/digestd.toml worker
    """
    import asyncio

    from digestd.delivery.worker import require_postgresql

    settings = app.settings
    engine = app.engine()
    require_postgresql(engine)
    configure_logging(settings.log.level, json_lines=settings.log.json)
    tune_collector()
    state = asyncio.run(_work(app, engine, poll_seconds, exit_when_idle))
    summary = summarise(state)
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"sent {summary['sent']}, retrying {summary['retrying']}, failed {summary['failed']}, "
        f"unknown {summary['unknown']}, skipped {summary['skipped']} in {summary['seconds']} s "
        f"({summary['messages_per_second']} messages/s; database {summary['database_seconds']} s, "
        f"rank+render {summary['build_seconds']} s, SMTP {summary['smtp_seconds']} s)"
    )


COMMANDS = [worker]
