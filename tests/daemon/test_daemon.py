"""The daemon: its job functions under a frozen clock, and `digestd run` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TypeVar

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from delivery.sinks import SinkHandler, free_port
from feed_server import FeedServer, Reply, feed_server
from processes import DEADLINE_SECONDS, Processes, still_running, wait_until
from sqlalchemy import Engine
from sqlmodel import select

from digestd.cli import cli
from digestd.config import DigestSettings, Settings
from digestd.daemon.scheduler import DaemonJobs
from digestd.delivery.ledger import SENT
from digestd.mail.render import make_email_builder
from digestd.models import Delivery, SentPaper, Subscriber
from digestd.store import make_engine, open_session
from digestd.subscribers import SubscriberInput, add_subscriber

REPO = Path(__file__).resolve().parents[2]
Handler = TypeVar("Handler", bound=SinkHandler)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def add(engine: Engine, when: datetime, **fields: object) -> None:
    with open_session(engine) as session:
        given = SubscriberInput(email="reader@example.org", keywords="graph neural networks", **fields)  # type: ignore[arg-type]
        add_subscriber(session, given, defaults=Settings().digest, now=when)


def tick_through(engine: Engine, start: datetime, end: datetime, step: timedelta) -> list[Delivery]:
    """Run the planning tick every `step` from `start` to `end`; the ledger rows it made."""
    clock = Clock(start)
    settings = Settings()
    jobs = DaemonJobs(
        engine, settings, make_email_builder(settings.mail, secret_key="k"), asyncio.Event(), clock, False
    )

    async def run() -> None:
        while clock.now <= end:
            await jobs.tick()
            clock.now += step

    asyncio.run(run())
    with open_session(engine) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.created_at)))


@pytest.mark.parametrize(("days", "kept"), [(30, {"2611.00001"}), (0, {"2611.00001", "2609.00001"})])
def test_the_daily_purge_forgets_papers_sent_longer_ago_than_configured(
    engine: Engine, days: int, kept: set[str]
) -> None:
    now = datetime(2026, 11, 30, 3, 17, tzinfo=UTC)
    add(engine, now - timedelta(days=90))
    with open_session(engine) as session:
        subscriber = session.scalars(select(Subscriber)).one()
        for paper, age in (("2611.00001", 29), ("2609.00001", 31)):
            session.add(SentPaper(subscriber_id=subscriber.id, paper_id=paper, sent_at=now - timedelta(days=age)))
    settings = Settings(digest=DigestSettings(remember_sent_days=days))
    jobs = DaemonJobs(engine, settings, make_email_builder(settings.mail, secret_key="k"), asyncio.Event(), lambda: now)
    asyncio.run(jobs.purge())
    with open_session(engine) as session:
        assert set(session.scalars(select(SentPaper.paper_id))) == kept


@pytest.mark.parametrize(
    ("zone", "day", "planned_at"),
    [
        ("Europe/Berlin", "2026-03-29", "2026-03-29T01:00:00+00:00"),  # 02:30 does not exist: 03:00 local
        ("Europe/Berlin", "2026-10-25", "2026-10-25T00:30:00+00:00"),  # 02:30 happens twice: the first
        ("America/New_York", "2026-03-08", "2026-03-08T07:00:00+00:00"),  # 02:30 does not exist: 03:00 local
        ("America/New_York", "2026-11-01", "2026-11-01T07:30:00+00:00"),  # after the repeated hour
    ],
)
def test_weekly_digest_at_0230_goes_out_once_on_dst_days(engine: Engine, zone: str, day: str, planned_at: str) -> None:
    sunday = datetime.fromisoformat(f"{day}T12:00:00+00:00")
    add(engine, sunday - timedelta(days=3), day="sun", time="02:30", timezone=zone)
    rows = tick_through(engine, sunday - timedelta(hours=14), sunday + timedelta(hours=6), timedelta(minutes=5))
    assert [(row.period, row.created_at.isoformat()) for row in rows] == [(day, planned_at)]


@pytest.mark.parametrize("downtime", [timedelta(hours=6), timedelta(days=15)])
def test_downtime_gives_one_catch_up_digest_never_two(engine: Engine, downtime: timedelta) -> None:
    added = datetime(2026, 11, 1, 12, tzinfo=UTC)
    add(engine, added, frequency="daily", time="08:00", timezone="UTC")
    first_due = datetime(2026, 11, 2, 8, tzinfo=UTC)
    back = first_due + downtime  # the daemon was off across one or many due times
    rows = tick_through(engine, back, back + timedelta(hours=10), timedelta(minutes=30))
    catch_up = [row for row in rows if row.created_at == back]
    assert len(catch_up) == 1, "exactly one digest on start"
    later = [row for row in rows if row.created_at != back]
    assert all(row.created_at.time().hour == 8 for row in later), "then back on schedule, 08:00 only"
    assert len(later) <= 1
    assert catch_up[0].period_end <= back
    with open_session(engine) as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.next_due_at is not None and subscriber.next_due_at > back + timedelta(hours=10)


def test_daily_weekdays_only_skips_the_weekend(engine: Engine) -> None:
    friday = datetime(2026, 11, 27, tzinfo=UTC)
    add(engine, friday - timedelta(hours=12), frequency="daily", time="07:00", weekdays_only=True)
    rows = tick_through(engine, friday, friday + timedelta(days=5), timedelta(hours=1))
    assert [row.period for row in rows] == ["2026-11-27", "2026-11-30", "2026-12-01"]  # Fri, Mon, Tue


# --- digestd run as a real process ---------------------------------------------------------


def todays_feed(now: datetime) -> bytes:
    """An RSS 2.0 listing, written for this test, announcing two papers today."""
    items = "".join(
        f"""<item><title>{title}</title><link>https://arxiv.org/abs/{paper_id}</link>
        <description>arXiv:{paper_id}v1 Announce Type: new
Abstract: {abstract}</description><guid isPermaLink="false">oai:arXiv.org:{paper_id}v1</guid>
        <category>cs.LG</category><pubDate>{format_datetime(now)}</pubDate>
        <arxiv:announce_type>new</arxiv:announce_type><dc:creator>Ada Lovelace, Alan Turing</dc:creator></item>"""
        for paper_id, title, abstract in [
            ("2611.99001", "Graph Neural Networks for Sparse Molecules", "Message passing on graph neural networks."),
            ("2611.99002", "Gradient Noise in Large Batches", "We measure gradient noise at scale."),
        ]
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>
<description>cs.LG</description><pubDate>{format_datetime(now)}</pubDate>{items}</channel></rss>""".encode()


@contextmanager
def serving(handler: Handler) -> Iterator[Handler]:
    """An aiosmtpd server on 127.0.0.1 with `handler`; its port is `handler.port`."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def sink() -> Iterator[SinkHandler]:
    with serving(SinkHandler()) as handler:
        yield handler


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with feed_server() as server:
        yield server


def write_config(tmp_path: Path, sink: SinkHandler, feed_url: str) -> Path:
    config = tmp_path / "digestd.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "digestd.sqlite3"}"
[mail]
from = "Paper Digest <digest@example.org>"
base_url = "https://digest.example.org"
[smtp]
host = "127.0.0.1"
port = {sink.port}  # type: ignore[attr-defined]
security = "none"
timeout_seconds = 5
[web]
bind = "127.0.0.1:{free_port()}"
[ingest]
contact = "ops@example.org"
[[sources]]
name = "arxiv-cs-lg"
kind = "arxiv-rss"
url = "{feed_url}"
schedule = "0 0 1 1 *"
""".replace("  # type: ignore[attr-defined]", "")
    )
    return config


def environment(config: Path) -> dict[str, str]:
    return {"DIGESTD_CONFIG": str(config), "DIGESTD_SECRET_KEY": "k" * 32}


def digestd(config: Path, *args: str) -> Result:
    """A short CLI command, in this process (the daemon is the one under test as a process)."""
    return CliRunner().invoke(cli, list(args), env=environment(config), catch_exceptions=False)


def digestd_process(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environment(config), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "digestd", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=DEADLINE_SECONDS, check=False)


def start_daemon(processes: Processes, config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **environment(config), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "digestd", "run"]
    return processes.start(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def prepare(tmp_path: Path, sink: SinkHandler, feeds: FeedServer) -> Path:
    url = feeds.add("/rss/cs.LG", Reply(todays_feed(datetime.now(UTC))))
    config = write_config(tmp_path, sink, url)
    assert digestd(config, "init").exit_code == 0
    added = digestd(config, "subscribers", "add", "ada@example.org", "--keywords", "graph neural networks")
    assert added.exit_code == 0, added.output
    engine = make_engine(database_url(tmp_path))
    with engine.begin() as connection:  # due a minute ago, first digest
        connection.exec_driver_sql("UPDATE subscriber SET next_due_at = ?", (datetime.now(UTC) - timedelta(minutes=1),))
    engine.dispose()
    return config


def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'digestd.sqlite3'}"


def ledger_statuses(tmp_path: Path) -> list[str]:
    engine = make_engine(database_url(tmp_path))
    try:
        with open_session(engine) as session:
            return list(session.scalars(select(Delivery.status)))
    finally:
        engine.dispose()


def test_the_daemon_ingests_sends_and_stops_cleanly(
    tmp_path: Path, sink: SinkHandler, feeds: FeedServer, processes: Processes
) -> None:
    config = prepare(tmp_path, sink, feeds)
    daemon = start_daemon(processes, config)
    wait_until(lambda: still_running(daemon) and sink.messages, "the digest reached the sink")
    wait_until(
        lambda: ledger_statuses(tmp_path) == [SENT], "the ledger says sent", progress=lambda: ledger_statuses(tmp_path)
    )
    # A duplicate could only come from the tick still running: SIGTERM lets it finish first.
    daemon.send_signal(signal.SIGTERM)
    _, stderr = daemon.communicate(timeout=DEADLINE_SECONDS)
    assert daemon.returncode == 0, stderr
    assert [m.recipients for m in sink.messages] == [["ada@example.org"]]
    assert b"Graph Neural Networks for Sparse Molecules" in sink.messages[0].data
    assert feeds.hits("/rss/cs.LG"), "the feed was fetched on start (its scheduled run had never happened)"
    assert "ingest arxiv-cs-lg: ok, 2 read, 2 new" in stderr
    assert "tick: 1 planned, 1 sent" in stderr and "digestd stopped" in stderr
    status = digestd(config, "status")
    assert "1 sent" in status.output and "daemon:" in status.output


def test_a_second_daemon_on_the_same_sqlite_file_refuses(
    tmp_path: Path, sink: SinkHandler, feeds: FeedServer, processes: Processes
) -> None:
    config = prepare(tmp_path, sink, feeds)
    first = start_daemon(processes, config)
    lock = tmp_path / "digestd.sqlite3.lock"
    wait_until(
        lambda: still_running(first) and lock.exists() and "pid" in lock.read_text(), f"the daemon's pid in {lock.name}"
    )
    assert "running (pid" in digestd(config, "status").output
    second = digestd_process(config, "run")
    assert second.returncode != 0
    assert "error: another digestd daemon is already running on" in second.stderr
    assert "Traceback" not in second.stderr
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=DEADLINE_SECONDS)
    assert first.returncode == 0
    assert "daemon:      not running" in digestd(config, "status").output
