"""The CLI answers at once: `digestd --help`, every `COMMAND --help` and `status` load only
what they need, in a fresh process as a user runs them (see `bench/cli_startup.py` for the
times). What each test checks is the set of modules imported, never a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import Engine

from digestd.cli import cli
from digestd.demo import SAMPLE_PAPERS
from digestd.ingest.run import ingest_file

ROOT = Path(__file__).resolve().parents[2]
# What a bare `import digestd.cli` and any `--help` must not load: seconds of start-up.
HEAVY = ("numpy", "scipy", "sklearn", "sqlalchemy")
# What `digestd status` must not load: it needs the database layer, not ranking, the web,
# mail delivery, the sources, the scheduler, the checking of addresses, or Alembic (a
# database is checked against store.HEAD_REVISION by reading one row).
NOT_FOR_STATUS = (
    "alembic",
    "email_validator",
    "numpy",
    "scipy",
    "sklearn",
    "starlette",
    "uvicorn",
    "httpx",
    "aiosmtplib",
    "feedparser",
    "css_inline",
    "dkim",
    "apscheduler",
)


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under `group`, as the words a user types."""
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
    return paths


def python(*args: str) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in a fresh process, this checkout first on its path and no digestd
    settings from the caller's environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIGESTD_")}
    return subprocess.run(
        [sys.executable, *args],
        env=env | {"PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_digestd(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`python -X importtime -m digestd ARGS` in a fresh process; the modules it imported."""
    result = python("-X", "importtime", "-m", "digestd", *args)
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert lines, f"no -X importtime report in stderr:\n{result.stderr}"
    return result, {line.rsplit("|", 1)[1].strip() for line in lines}


def loaded(modules: set[str] | list[str], packages: tuple[str, ...]) -> list[str]:
    """Which of `packages` have a module among `modules`."""
    return sorted({m.split(".", 1)[0] for m in modules} & set(packages))


def test_import_digestd_cli_loads_no_heavy_module() -> None:
    code = "import sys, digestd.cli; print('\\n'.join(sorted(sys.modules)))"
    result = python("-c", code)
    assert result.returncode == 0, result.stderr
    modules = set(result.stdout.split())
    assert "digestd.cli.subscribers" in modules, "the commands are registered at import"
    assert loaded(modules, HEAVY) == []


def test_help_loads_no_heavy_module() -> None:
    result, modules = run_digestd("--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("Usage: digestd [OPTIONS] COMMAND")
    assert loaded(modules, HEAVY) == []


# Every `digestd COMMAND --help` in one fresh process (one process each would cost the
# suite seconds); modules stay loaded, so the first help that reports one is the culprit.
EVERY_HELP = """
import json, sys
from click.testing import CliRunner
from digestd.cli import cli
for words in json.loads(sys.argv[1]):
    result = CliRunner().invoke(cli, [*words, "--help"], prog_name="digestd")
    heavy = sorted({m.split(".", 1)[0] for m in sys.modules} & set(sys.argv[2].split(",")))
    usage = result.output.splitlines()[0]
    print(json.dumps({"words": words, "exit": result.exit_code, "usage": usage, "heavy": heavy}))
"""


def test_every_command_help_loads_no_heavy_module() -> None:
    paths = command_paths(cli)
    assert ("subscribers", "seeds", "import") in paths
    result = python("-c", EVERY_HELP, json.dumps(paths), ",".join(HEAVY))
    assert result.returncode == 0, result.stderr[-2000:]
    helps = [json.loads(line) for line in result.stdout.splitlines()]
    assert [tuple(h["words"]) for h in helps] == paths
    for help_ in helps:
        words = " ".join(help_["words"])
        assert help_["exit"] == 0, words
        assert help_["usage"].startswith(f"Usage: digestd {words} "), help_
        assert help_["heavy"] == [], f"`digestd {words} --help` imported {help_['heavy']}"


def test_status_on_sqlite_loads_only_the_database_layer(sqlite_url: str, engine: Engine) -> None:
    ingest_file(engine, SAMPLE_PAPERS, now=datetime.now(UTC))
    result, modules = run_digestd("--database", sqlite_url, "status")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "papers:      29" in result.stdout
    assert "sqlalchemy" in modules, "status reads the database"
    assert loaded(modules, NOT_FOR_STATUS) == []
