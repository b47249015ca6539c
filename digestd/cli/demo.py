"""`digestd demo`: try digestd offline, no configuration needed."""

from __future__ import annotations

from pathlib import Path

import click

from digestd.cli import AppContext, pass_app


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("digestd-demo"),
    show_default=True,
    help="Folder for the demo database and the emails.",
)
@pass_app
def demo(app: AppContext, out: Path) -> None:
    """Run the whole flow offline on bundled sample papers: a throw-away SQLite database,
    three example subscribers, their digests written as .eml and .html files.

    \b
    Example:
      digestd demo --out /tmp/digestd-demo
    """
    from digestd.demo import run_demo

    click.echo(f"digestd demo: sample papers, three subscribers, database in {out}/", err=True)
    for result in run_demo(out, app.settings, now=app.now()):
        digest = result.digest
        click.echo(f"\n{digest.profile.email}: {len(digest.picks)} of {digest.candidates} papers")
        for pick in digest.picks:
            click.echo(f"  {pick.score:5.2f}  {pick.paper.title}")
            click.echo(f"         why: {'; '.join(pick.reasons)}")
        click.echo(f"  -> {result.eml}\n  -> {result.html}")
    click.echo(f"\nOpen the .html files in a browser, or the .eml files in a mail client. Done: {out}/")


COMMANDS = [demo]
