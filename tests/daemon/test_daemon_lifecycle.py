"""`digestd run` around its edges: the single-daemon lock."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from delivery.sinks import SinkHandler
from feed_server import FeedServer
from sqlalchemy import Engine
from test_daemon import digestd, prepare, serving, start_daemon, wait_for

from digestd.config import MailSettings, Settings, SmtpSettings
from digestd.daemon.scheduler import Clock, DaemonJobs, utc_now
from digestd.mail.render import make_email_builder
from digestd.store import make_engine

FEED_PATH = "/rss/cs.LG"


@dataclass
class HoldingSink(SinkHandler):
    """A sink that tells when a message has come through DATA (it then holds its 250 for
    `delay`), and that can hold its answer to RCPT for `rcpt_delay` seconds."""

    in_data: threading.Event = field(default_factory=threading.Event)
    in_rcpt: threading.Event = field(default_factory=threading.Event)
    rcpt_delay: float = 0.0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.in_rcpt.set()
        await asyncio.sleep(self.rcpt_delay)
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        return await super().handle_DATA(server, session, envelope)

    def settings(self, **mail: Any) -> Settings:
        """Settings that deliver to this sink, with the `mail` settings given."""
        port = self.port  # type: ignore[attr-defined]
        smtp = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=60, connections=1)
        return Settings(smtp=smtp, mail=MailSettings(**mail))


@pytest.fixture
def relay() -> Iterator[HoldingSink]:
    with serving(HoldingSink()) as handler:
        yield handler


def daemon_jobs(engine: Engine, settings: Settings, stop: asyncio.Event, clock: Clock = utc_now) -> DaemonJobs:
    return DaemonJobs(engine, settings, make_email_builder(settings.mail, secret_key="k"), stop, clock)


def ledger(tmp_path: Path) -> list[tuple[str, ...]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'digestd.sqlite3'}")
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql("SELECT status FROM delivery")]
    finally:
        engine.dispose()


def stop(daemon: subprocess.Popen[str], *, seconds: float = 90) -> tuple[str, float]:
    """SIGTERM, then wait for the exit (SIGKILL after `seconds`); its stderr and how long it took."""
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    try:
        _, stderr = daemon.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.communicate()
        raise
    return stderr, time.monotonic() - started


def errors_logged(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line or "Traceback" in line]


def test_a_second_daemon_through_a_symlink_to_the_database_refuses(
    tmp_path: Path, relay: HoldingSink, server: FeedServer
) -> None:
    config = prepare(tmp_path, relay, server)
    link = tmp_path / "elsewhere" / "same.sqlite3"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "digestd.sqlite3")
    other = tmp_path / "through-the-link.toml"
    other.write_text(config.read_text().replace(str(tmp_path / "digestd.sqlite3"), str(link)))
    first = start_daemon(config)
    try:
        lock = tmp_path / "digestd.sqlite3.lock"
        assert wait_for(lambda: lock.exists() and "pid" in lock.read_text(), 60), "the first daemon holds the lock"
        assert "running (pid" in digestd(other, "status").stdout
        second = digestd(other, "run")
        assert second.returncode != 0, second.stderr
        assert f"error: another digestd daemon is already running on {tmp_path / 'digestd.sqlite3'}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stderr, _ = stop(first)
    assert first.returncode == 0, stderr
