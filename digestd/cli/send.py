"""`digestd send`: plan and deliver the digests that are due (or write them with --dry-run)."""

from __future__ import annotations

import logging
import re
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digestd.cli import AppContext, pass_app
from digestd.config import Settings
from digestd.daemon.process import tune_collector
from digestd.errors import ConfigError
from digestd.mail.tokens import DEV_SECRET_KEY, check_secret_key

if TYPE_CHECKING:
    from digestd.delivery.claims import Claim
    from digestd.delivery.send import Job, SendReport
    from digestd.mail.render import EmailBuilder

log = logging.getLogger(__name__)


class ProgressBar:
    """click's progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self) -> None:
        self.bar: Any = None

    def start(self, total: int) -> None:
        if total and sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label="sending", file=sys.stderr, show_pos=True)
            self.bar.__enter__()

    def update(self, status: str) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _clock() -> datetime:
    return datetime.now(UTC)


async def _send(
    app: AppContext, builder: EmailBuilder, emails: Sequence[str], resend_unknown: bool, report: SendReport
) -> SendReport:
    import asyncio

    from digestd.delivery.send import send_due

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    bar = ProgressBar()
    try:
        return await send_due(
            app.engine(),
            app.settings,
            builder,
            clock=_clock,
            stop=stop,
            emails=emails,
            resend_unknown=resend_unknown,
            progress=bar,
            report=report,
        )
    finally:
        bar.close()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)


def _write(app: AppContext, jobs: Sequence[Job], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    explained: dict[tuple[datetime, datetime], Any] = {}
    if not jobs:
        click.echo("no digest is due now; `digestd send --dry-run EMAIL` builds one subscriber's digest now")
    for job in jobs:
        claim = job.claim
        if job.failure:
            click.echo(f"{claim.email}: would fail: {job.failure}")
            continue
        if job.email is None:
            click.echo(f"{claim.email}: nothing matched; would be skipped (mail.send_empty is off)")
            _explain_no_candidates(app, claim, explained)
            continue
        path = folder / _file_name(claim.email, claim.period)
        path.write_bytes(job.email.data)
        written += 1
        click.echo(f"{claim.email}: {len(job.email.paper_ids)} papers -> {path}")
    click.echo(f"{written} digest(s) written to {folder} (nothing was sent, the ledger is unchanged)")


def _file_name(email: str, period: object) -> str:
    """`EMAIL-PERIOD.eml`, with what a file name cannot hold (a `/` is valid in an address's
    local part) or should not (other punctuation, non-ASCII letters stay) as `_`."""
    safe = re.sub(r"[^\w@.+-]", "_", email).lstrip(".")
    return f"{safe}-{period}.eml"


def _explain_no_candidates(app: AppContext, claim: Claim, explained: dict[tuple[datetime, datetime], Any]) -> None:
    """The note and hint of `api.explain_no_new_papers`, asked once per period (`explained`
    keeps the answers): every subscriber skipped in a first session has the same one."""
    from digestd import api

    period = (claim.period_start, claim.period_end)
    if period not in explained:
        explained[period] = api.explain_no_new_papers(app.engine(), start=period[0], end=period[1])
    found = explained[period]
    if found:
        note, latest = found
        click.echo(f"  note: {note}")
        click.echo(f"  hint: {api.preview_hint(claim.email, latest)}")


def _dry_run_builder(settings: Settings) -> EmailBuilder:
    from digestd.mail.render import make_email_builder

    key = settings.secret_key
    if not key:
        click.echo("warning: DIGESTD_SECRET_KEY is not set; links are signed with a development key", err=True)
        key = DEV_SECRET_KEY
    return make_email_builder(settings.mail, secret_key=key, web=settings.web)


@click.command()
@click.argument("emails", nargs=-1, metavar="[EMAIL]...")
@click.option("--dry-run", is_flag=True, help="Write the emails as .eml files; send nothing, change nothing.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("digestd-outbox"),
    show_default=True,
    help="Folder for --dry-run.",
)
@click.option("--resend-unknown", is_flag=True, help="Also re-send deliveries whose outcome is unknown.")
@pass_app
def send(app: AppContext, emails: tuple[str, ...], dry_run: bool, out: Path, resend_unknown: bool) -> None:
    """Plan and deliver the digests due now. With EMAIL arguments, only those subscribers,
    each getting a digest now even if it is not due yet.

    A delivery whose connection dropped while the message was being transferred is
    marked unknown (it may have arrived); it is re-sent only with --resend-unknown.
    SIGTERM stops claiming, lets messages on the wire finish, and exits 0.

    \b
    Examples:
      digestd send
      digestd send --dry-run --out outbox/
      digestd send ada@example.org
      digestd send --resend-unknown
    """
    import asyncio

    from digestd.delivery.send import SendReport, preview_due
    from digestd.mail.render import make_email_builder

    if dry_run:
        from digestd.embedding.encoder import open_encoder

        builder = _dry_run_builder(app.settings)
        send_empty, encoder = app.settings.mail.send_empty, open_encoder(app.settings.encoder)
        _write(
            app,
            preview_due(app.engine(), builder, now=_clock(), emails=emails, send_empty=send_empty, encoder=encoder),
            out,
        )
        return
    builder = make_email_builder(
        app.settings.mail, secret_key=check_secret_key(app.settings.secret_key), web=app.settings.web
    )
    tune_collector()
    report = SendReport()
    try:
        asyncio.run(_send(app, builder, emails, resend_unknown, report))
    except ConfigError:
        raise  # refused before anything was planned or sent
    except Exception:
        _summarise(report)  # what went out before the error, which the CLI prints next
        raise
    _summarise(report)


def _summarise(report: SendReport) -> None:
    click.echo(report.summary())
    if report.failed:
        click.echo("hint: `digestd status` shows why deliveries failed", err=True)
    if report.unknown:
        click.echo("hint: see `digestd status`; re-send those with `digestd send --resend-unknown`", err=True)


COMMANDS = [send]
