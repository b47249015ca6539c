import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from digestd.errors import StoreError
from digestd.store import (
    HEAD_REVISION,
    alembic_config,
    alembic_head_revision,
    check_migrated,
    check_sqlite,
    make_engine,
    migrate,
    sqlite_has_json,
)

TABLES = {
    "paper",
    "subscriber",
    "profile_item",
    "rating",
    "delivery",
    "sent_paper",
    "suppression",
    "source_state",
    "text_vector",
}


def test_the_head_revision_written_in_store_is_the_newest_migration() -> None:
    # digestd checks a database against HEAD_REVISION without loading Alembic: a new
    # migration must move it, or every command would refuse the migrated database.
    assert alembic_head_revision() == HEAD_REVISION, "set HEAD_REVISION in digestd/store.py to the new migration"


def test_sqlite_migrates_from_empty_to_head_and_models_agree(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'db.sqlite3'}")
    assert migrate(engine) == (None, HEAD_REVISION)
    assert TABLES <= set(inspect(engine).get_table_names())
    command.check(alembic_config(engine))  # raises if models and migrations disagree
    assert migrate(engine) == (HEAD_REVISION, HEAD_REVISION)  # running init twice is harmless
    engine.dispose()


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.postgres
def test_postgresql_migrates_from_empty_to_head_and_models_agree(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    assert migrate(engine) == (None, HEAD_REVISION)
    assert TABLES <= set(inspect(engine).get_table_names())
    command.check(alembic_config(engine))
    engine.dispose()


def test_an_empty_database_asks_for_init(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with pytest.raises(StoreError) as raised:
        check_migrated(engine)
    assert raised.value.hint == "run `digestd init` first"
    engine.dispose()


@pytest.mark.postgres
def test_the_cli_works_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from digestd.cli import cli
    from digestd.demo import SAMPLE_PAPERS

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--database", postgres_url, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("init")
    assert "29 new" in run("ingest", "--file", str(SAMPLE_PAPERS))
    assert "0 new" in run("ingest", "--file", str(SAMPLE_PAPERS))
    run("subscribers", "add", "pg@example.org", "--keywords", "surface code", "--seed", "2611.20001")
    preview = json.loads(run("preview", "pg@example.org", "--since", "2026-11-01", "--format", "json"))
    assert preview["papers"][0]["id"] in {"2611.20001", "2611.20002", "2611.20006"}
    run("subscribers", "wipe", "pg@example.org", "--yes")
    assert "no subscribers yet" in run("subscribers", "list")


@pytest.mark.parametrize(
    ("version", "has_json", "found"),
    [((3, 26, 0), True, "this Python has SQLite 3.26.0"), ((3, 40, 1), False, "3.40.1 without its JSON functions")],
)
def test_an_sqlite_too_old_is_refused_with_what_to_do(
    version: tuple[int, int, int], has_json: bool, found: str
) -> None:
    with pytest.raises(StoreError) as raised:
        check_sqlite(version, has_json=has_json)
    assert "needs SQLite 3.35 or newer" in raised.value.message and found in raised.value.message
    assert raised.value.hint is not None and "PostgreSQL" in raised.value.hint


def test_this_python_s_sqlite_is_new_enough() -> None:
    check_sqlite(sqlite3.sqlite_version_info, has_json=sqlite_has_json())


def test_a_new_sqlite_database_and_its_companion_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """`digestd init` in a process with umask 022 (files 0644 by default); then the WAL
    files of an open connection and the daemon's lock file: all 0600."""
    database = tmp_path / "data" / "digestd.sqlite3"
    url = f"sqlite:///{database}"
    script = f"""
import os
from digestd.cli import cli
from digestd.daemon.process import hold_daemon_lock
from digestd.store import make_engine

cli(["--database", {url!r}, "init"], standalone_mode=False)
engine = make_engine({url!r})
with hold_daemon_lock({url!r}), engine.connect() as connection:
    connection.exec_driver_sql("SELECT count(*) FROM paper").all()
    for suffix in ("", "-wal", "-shm", ".lock"):
        print("mode", suffix or "database", oct(os.stat({str(database)!r} + suffix).st_mode & 0o777))
"""
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", script],
        umask=0o022,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": root},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modes = dict(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("mode "))
    assert modes == {"database": "0o600", "-wal": "0o600", "-shm": "0o600", ".lock": "0o600"}
