"""`digestd bounces ...`: read what came back to the bounce address (README, "Bounces")."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from digestd.cli import AppContext, pass_app
from digestd.errors import StoreError

# sendmail's exit codes (sysexits.h), which an MTA's pipe transport and aliases understand.
EX_OK, EX_TEMPFAIL = 0, 75


@click.group()
def bounces() -> None:
    """Read bounces, complaints and mailed unsubscribes (README, "Bounces").

    \b
    Example:
      digestd bounces scan --maildir /var/mail/digestd-bounces
    """


@bounces.command()
@click.option("--recipient", default="", metavar="ADDRESS", help="The envelope recipient (Postfix: ${recipient}).")
@pass_app
def read(app: AppContext, recipient: str) -> None:
    """Read one message on standard input and act on it (for an alias or a pipe transport).

    Exits 0 when the message was handled or ignored, and 75 (EX_TEMPFAIL) when the database
    cannot be reached, so that the mail server keeps the message and tries again.

    \b
    Example (/etc/aliases):
      bounces: "|/opt/digestd/bin/digestd --config /etc/digestd/digestd.toml bounces read"
    """
    from sqlalchemy.exc import DBAPIError

    from digestd.bounces.events import handle_message

    raw = sys.stdin.buffer.read()
    try:
        outcome = handle_message(app.engine(), app.settings, raw, source="pipe", now=app.now(), recipient=recipient)
    except (StoreError, DBAPIError) as error:
        click.echo(f"error: the database cannot be reached, the message stays with the mail server: {error}", err=True)
        sys.exit(EX_TEMPFAIL)
    click.echo(outcome.describe())


@bounces.command()
@click.option(
    "--maildir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The Maildir that bounces are delivered to.",
)
@pass_app
def scan(app: AppContext, maildir: Path) -> None:
    """Act on every message in a Maildir's new/ and move each to cur/ once recorded.

    \b
    Example:
      digestd bounces scan --maildir /var/mail/digestd-bounces
    """
    from digestd.bounces.mailboxes import scan_maildir

    report = scan_maildir(app.engine(), app.settings, maildir, clock=app.now)
    click.echo(f"{maildir}: {report.summary()}")


COMMANDS = [bounces]
