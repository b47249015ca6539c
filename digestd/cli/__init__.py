"""The `digestd` command line: a thin shell over `digestd.api`.

Settings are loaded once here and passed down in the click context; every
`DigestdError` is turned into one line (plus a hint) in `main`; `--debug` shows the
traceback instead.

Each module here imports only click, the standard library and the light base modules
(config, errors, records, identity, ...) at the top; the stages, the database and asyncio
are imported inside the commands that use them, so that `digestd --help` answers at once
(tests/cli/test_cli_startup.py keeps it so; bench/cli_startup.py times it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from digestd.config import Settings, load_settings
from digestd.errors import DigestdError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session


@dataclass
class AppContext:
    """What every command gets: the settings, and an engine opened on first use."""

    config_path: str | None
    overrides: dict[str, dict[str, Any]]
    debug: bool = False
    _settings: Settings | None = None
    _engines: list[Engine] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path, overrides=self.overrides)
        return self._settings

    def engine(self) -> Engine:
        from digestd import api

        engine = api.open_database(self.settings)
        self._engines.append(engine)
        return engine

    @contextmanager
    def session(self, *, writes: bool = False) -> Iterator[Session]:
        """`store.open_session` on a new engine: commits on success, rolls back on error. A
        command that reads then writes says `writes`: on SQLite it then takes the write lock
        first, waiting for a running daemon's write, instead of failing ("database is
        locked") when the daemon wrote between its read and its write."""
        from digestd.store import open_session

        with open_session(self.engine(), immediate=writes) as session:
            yield session

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


pass_app = click.make_pass_decorator(AppContext)


class DigestdGroup(click.Group):
    """Turns a `DigestdError` from any command into one line, a hint and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestdError as error:
            if isinstance(ctx.obj, AppContext) and ctx.obj.debug:
                raise
            click.echo(f"error: {error.message}", err=True)
            if error.hint:
                click.echo(f"hint: {error.hint}", err=True)
            ctx.exit(error.exit_code)


@click.group(
    cls=DigestdGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--config", "config_path", metavar="PATH", help="TOML config file (default: $DIGESTD_CONFIG).")
@click.option("--database", metavar="URL", help="Database URL; overrides database.url.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="digestd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, database: str | None, log_level: str | None, debug: bool) -> None:
    """digestd emails each subscriber a personalised digest of new research papers.

    \b
    Start here:
      digestd demo                          # offline, on bundled sample papers
      digestd --config digestd.toml init    # create or migrate the database
      digestd ingest --file papers.jsonl.gz
      digestd subscribers add ada@example.org --keywords "graph neural networks, diffusion"
      digestd preview ada@example.org --format text
    """
    overrides: dict[str, dict[str, Any]] = {"database": {"url": database}, "log": {"level": log_level}}
    app = AppContext(config_path=config_path, overrides=overrides, debug=debug)
    ctx.obj = app
    ctx.call_on_close(app.close)
    logging.basicConfig(
        level=(log_level or "WARNING").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("flufl.bounce").setLevel(logging.WARNING)  # a line per detector per message at INFO


@cli.command()
@pass_app
def init(app: AppContext) -> None:
    """Create the database, or migrate it to this version of digestd.

    \b
    Example:
      digestd --database sqlite:///./digestd.sqlite3 init
    """
    from digestd import api

    before, after = api.init_database(app.settings)
    where = app.settings.database_url
    if before == after:
        click.echo(f"database {where} is up to date (revision {after})")
    else:
        click.echo(f"database {where} migrated from {before or 'empty'} to revision {after}")


def _register_commands() -> None:
    from digestd.cli import bounces, demo, papers, ratings, run, send, status, subscribers, web, worker

    for module in (subscribers, papers, ratings, send, status, demo, web, run, worker, bounces):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main() -> None:
    """Entry point of the `digestd` console script and `python -m digestd`."""
    cli(prog_name="digestd")
