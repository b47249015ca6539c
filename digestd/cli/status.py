"""`digestd status`: what is in the database and what is due."""

from __future__ import annotations

import json

import click

from digestd.cli import AppContext, pass_app
from digestd.daemon.process import daemon_running


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show papers, subscribers, the delivery ledger and the sources.

    \b
    Example:
      digestd status --json
    """
    from digestd import status as status_report
    from digestd.delivery.coordination import describe_scheduler_node

    engine = app.engine()
    daemon = daemon_running(app.settings.database_url) or describe_scheduler_node(engine)
    report = status_report.collect_status(engine, now=app.now(), daemon=daemon, encoder=app.settings.encoder)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(status_report.format_status(report))


COMMANDS = [status]
