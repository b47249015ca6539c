"""`digestd run`: the daemon."""

from __future__ import annotations

import click

from digestd.cli import AppContext, pass_app
from digestd.daemon.process import configure_logging, tune_collector


@click.command()
@click.option("--no-deliver", is_flag=True, help="Plan digests but leave sending to `digestd worker` processes.")
@click.option("--no-web", is_flag=True, help="Do not serve the sign-up and manage pages.")
@pass_app
def run(app: AppContext, no_deliver: bool, no_web: bool) -> None:
    """Run the daemon: ingest each source on its schedule, plan and send the digests that
    are due every minute, and serve the web pages on web.bind. SIGTERM or Ctrl-C lets
    messages in flight finish, then exits 0. Logs go to stderr (log.level, log.json).

    \b
    Example:
      DIGESTD_SECRET_KEY=... digestd --config /etc/digestd/digestd.toml run
    """
    import asyncio

    from digestd.daemon.run import run_daemon

    settings = app.settings
    configure_logging(settings.log.level, json_lines=settings.log.json)
    tune_collector()
    asyncio.run(run_daemon(settings, deliver=not no_deliver, web=not no_web))


COMMANDS = [run]
