"""`digestd send`: build and deliver the digests that are due."""

from __future__ import annotations

from pathlib import Path

import click

from digestd import api
from digestd.cli import AppContext, pass_app
from digestd.errors import InputError


@click.command()
@click.argument("emails", nargs=-1, metavar="[EMAIL]...")
@click.option("--dry-run", is_flag=True, help="Write the emails as .eml files instead of sending them.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("digestd-outbox"),
    show_default=True,
    help="Folder for --dry-run.",
)
@pass_app
def send(app: AppContext, emails: tuple[str, ...], dry_run: bool, out: Path) -> None:
    """Plan and deliver the digests due now (or those of the given subscribers).

    \b
    Example:
      digestd send --dry-run --out outbox/
    """
    if not dry_run:
        raise InputError("sending over SMTP is not available yet", hint="use --dry-run --out DIR")
    rendered = api.render_due_digests(app.engine(), app.settings, now=app.now(), emails=emails)
    paths = api.write_messages(rendered, out)
    for item, path in zip(rendered, paths, strict=True):
        click.echo(f"{item.digest.profile.email}: {len(item.digest.picks)} papers -> {path}")
    click.echo(f"{len(paths)} digest(s) written to {out} (nothing was sent)")


COMMANDS = [send]
