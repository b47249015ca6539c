"""`digestd bounces ...`: read what came back to the bounce address (README, "Bounces")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from digestd.cli import AppContext, pass_app
from digestd.errors import ConfigError, StoreError

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
    cannot be reached or digestd's settings are wrong (no mail.bounce_address, no secret
    key), so that the mail server keeps the message and tries again.

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
        _keep(f"the database cannot be reached: {str(error).splitlines()[0]}")
    except ConfigError as error:  # fixed by the operator, then the mail server's retry gets through
        _keep(f"{error.message}" + (f" (hint: {error.hint})" if error.hint else ""))
    click.echo(outcome.describe())


def _keep(reason: str) -> NoReturn:
    """Exit with EX_TEMPFAIL: the mail server keeps the message and delivers it again later."""
    click.echo(f"error: {reason}; the message stays with the mail server, which tries again", err=True)
    sys.exit(EX_TEMPFAIL)


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
    from sqlalchemy.exc import DBAPIError

    from digestd.bounces.mailboxes import scan_maildir

    try:
        report = scan_maildir(app.engine(), app.settings, maildir, clock=app.now)
    except DBAPIError as error:
        raise StoreError(
            f"the database cannot be reached: {str(error).splitlines()[0]}",
            hint="the messages not handled yet stay in new/ for the next scan",
        ) from None
    click.echo(f"{maildir}: {report.summary()}")


COMMANDS = [bounces]
