"""`digestd run` around its edges: SIGTERM while a message is inside DATA (and a send still
running when the stop's grace ends), start-up behind a slow feed, the single-daemon lock,
and the date of a catch-up digest."""

from __future__ import annotations

import asyncio
import email
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from delivery.sinks import SinkHandler
from feed_server import FeedServer, Reply, Request
from processes import Processes, wait_until
from sqlalchemy import Engine
from test_daemon import add, prepare, serving, start_daemon, todays_feed
from test_daemon import digestd_process as digestd

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


def test_sigterm_inside_data_lets_the_message_finish_and_records_it_sent(
    tmp_path: Path, relay: HoldingSink, server: FeedServer, processes: Processes
) -> None:
    relay.delay = 4.0  # the relay holds its 250 for 4 s after the message's last byte
    config = prepare(tmp_path, relay, server)
    config.write_text(config.read_text().replace("timeout_seconds = 5", "timeout_seconds = 30"))
    daemon = start_daemon(processes, config)
    try:
        assert relay.in_data.wait(60), "the digest reached DATA"
    finally:
        stderr, _ = stop(daemon)
    assert daemon.returncode == 0, stderr
    assert errors_logged(stderr) == [], stderr
    assert [m.recipients for m in relay.messages] == [["ada@example.org"]]
    assert ledger(tmp_path) == [("sent",)], stderr
    status = digestd(config, "status")
    assert "1 sent" in status.stdout and "resend-unknown" not in status.stdout + status.stderr


def test_a_slow_feed_delays_neither_the_web_pages_nor_deliveries_and_sigterm_ends_it(
    tmp_path: Path, relay: HoldingSink, server: FeedServer, processes: Processes
) -> None:
    release = threading.Event()
    body = todays_feed(datetime.now(UTC))

    def answer(request: Request) -> Reply:
        if len(server.hits(FEED_PATH)) > 1:  # the first fetch is `digestd ingest`'s; the daemon's hangs
            release.wait(120)
        return Reply(body)

    config = prepare(tmp_path, relay, server)
    server.route(FEED_PATH, answer)
    # a long per-read timeout: the fetch hangs as long as the server does, like a feed that drips;
    # the first tick waits 2 s for that catch-up (20 by default), then sends without it
    text = config.read_text().replace("[ingest]\n", "[ingest]\ncatch_up_wait_seconds = 2\n")
    config.write_text(text + "timeout_seconds = 300\n")
    ingested = digestd(config, "ingest")
    assert ingested.returncode == 0, ingested.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'digestd.sqlite3'}")
    with engine.begin() as connection:  # as if the daemon had been down at the source's run time
        connection.exec_driver_sql("UPDATE source_state SET last_run_at = NULL")
    engine.dispose()
    bind = tomllib.loads(config.read_text())["web"]["bind"]
    daemon = start_daemon(processes, config)
    try:
        wait_until(lambda: len(server.hits(FEED_PATH)) == 2, "the daemon started its catch-up ingest", timeout=60)
        wait_until(lambda: len(relay.messages) == 1, "the digest went out while the feed hung", timeout=60)
        page = httpx.get(f"http://{bind}/", timeout=30, trust_env=False)  # loopback: never through a proxy
        assert page.status_code == 200 and "<form" in page.text
        assert server.in_flight == 1, "the feed was still hanging"
    finally:
        stderr, seconds = stop(daemon)
        release.set()
    assert daemon.returncode == 0, stderr
    assert seconds < 30, f"SIGTERM took {seconds:.1f} s"
    assert "ingest arxiv-cs-lg: cut off by the stop" in stderr
    assert "tick: waiting up to 2 s for the catch-up ingest" in stderr
    assert "tick: not waiting any longer for the catch-up of arxiv-cs-lg" in stderr
    assert errors_logged(stderr) == [], stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'digestd.sqlite3'}")
    with engine.connect() as connection:  # the interrupted run is missed again: caught up on the next start
        assert connection.exec_driver_sql("SELECT last_run_at FROM source_state").scalar() is None
    engine.dispose()


def test_a_second_daemon_through_a_symlink_to_the_database_refuses(
    tmp_path: Path, relay: HoldingSink, server: FeedServer, processes: Processes
) -> None:
    config = prepare(tmp_path, relay, server)
    link = tmp_path / "elsewhere" / "same.sqlite3"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "digestd.sqlite3")
    other = tmp_path / "through-the-link.toml"
    other.write_text(config.read_text().replace(str(tmp_path / "digestd.sqlite3"), str(link)))
    first = start_daemon(processes, config)
    try:
        lock = tmp_path / "digestd.sqlite3.lock"
        wait_until(lambda: lock.exists() and "pid" in lock.read_text(), "the first daemon holds the lock", timeout=60)
        assert "running (pid" in digestd(other, "status").stdout
        second = digestd(other, "run")
        assert second.returncode != 0, second.stderr
        assert f"error: another digestd daemon is already running on {tmp_path / 'digestd.sqlite3'}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stderr, _ = stop(first)
    assert first.returncode == 0, stderr


@pytest.mark.parametrize(
    ("hold_at", "status", "reason"),
    [
        ("DATA", "unknown", "cut off by the stop during DATA; the message may have arrived"),
        ("RCPT", "temp_failed", "cut off by the stop before DATA; not sent"),
    ],
)
def test_a_send_still_running_when_the_grace_ends_records_what_is_known(
    engine: Engine, relay: HoldingSink, hold_at: str, status: str, reason: str
) -> None:
    """The relay holds its answer past the stop's grace: the tick is cancelled, and the row
    says whether the message may have arrived (it never stays `sending`)."""
    add(engine, datetime.now(UTC) - timedelta(days=2), frequency="daily")  # due since yesterday
    if hold_at == "DATA":
        relay.delay = 30.0
    else:
        relay.rcpt_delay = 30.0
    settings = relay.settings(send_empty=True)
    stop = asyncio.Event()
    jobs = daemon_jobs(engine, settings, stop)
    holding = relay.in_data if hold_at == "DATA" else relay.in_rcpt

    async def tick_then_stop() -> None:
        tick = asyncio.create_task(jobs.tick())
        while not holding.is_set():
            assert not tick.done(), "the tick ended before the relay held its answer"
            await asyncio.sleep(0.05)
        stop.set()
        await jobs.wait_for_running(0.5)
        with pytest.raises(asyncio.CancelledError):
            await tick

    asyncio.run(tick_then_stop())
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT status, last_error FROM delivery").all()
    assert [tuple(row) for row in rows] == [(status, reason)]


def test_a_catch_up_digest_is_dated_by_the_day_it_is_sent(engine: Engine, relay: HoldingSink) -> None:
    """Daily at 08:00 in Berlin, first due on Mon 2 Nov; the daemon was down until Thu 5 Nov
    23:30 UTC (00:30 on Fri 6 Nov in Berlin): one digest, dated the 6th, not the 2nd."""
    add(engine, datetime(2026, 11, 1, 12, tzinfo=UTC), frequency="daily", time="08:00", timezone="Europe/Berlin")
    back = datetime(2026, 11, 5, 23, 30, tzinfo=UTC)
    settings = relay.settings(send_empty=True)
    jobs = daemon_jobs(engine, settings, asyncio.Event(), clock=lambda: back)
    asyncio.run(jobs.tick())
    [message] = [email.message_from_bytes(received.data) for received in relay.messages]
    assert message["Subject"] == "Your paper digest for 6 Nov 2026: nothing new matched"
    assert "Your paper digest, 6 Nov 2026" in message.get_payload(0).get_payload(decode=True).decode()
    with engine.connect() as connection:  # the ledger keeps the period it was planned for
        assert connection.exec_driver_sql("SELECT period FROM delivery").scalar() == "2026-11-02"
