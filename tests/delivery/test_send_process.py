"""`digestd send` as a real process: killed with SIGKILL at any moment, or stopped with
SIGTERM; the next run completes the rest and nobody gets a digest twice (outside `unknown`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from processes import DEADLINE_SECONDS, Processes, still_running, wait_until
from seeds import SECRET, make_papers
from sinks import Sink
from sqlalchemy import Engine, update
from sqlmodel import col, select

from digestd.config import Settings
from digestd.delivery.ledger import PENDING, SENT, UNKNOWN
from digestd.models import Delivery, Subscriber
from digestd.store import open_session, save_papers
from digestd.subscribers import SubscriberInput, add_subscriber

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBERS = 24
pytestmark = pytest.mark.slow


def seed_due_now(engine: Engine) -> list[str]:
    """Subscribers due an hour ago (real clock), papers from two days ago."""
    now = datetime.now(UTC)
    emails = [f"reader{i:03d}@example.org" for i in range(SUBSCRIBERS)]
    with open_session(engine) as session:
        save_papers(session, make_papers(30, seen=now - timedelta(days=2)), now=now - timedelta(days=2))
        for email in emails:
            add_subscriber(
                session,
                SubscriberInput(email=email, keywords="graph neural networks"),
                defaults=Settings().digest,
                now=now,
            )
        session.execute(update(Subscriber).values(next_due_at=now - timedelta(hours=1)))
    return emails


def write_config(tmp_path: Path, engine: Engine, sink: Sink, *, render_processes: int = 0) -> Path:
    path = tmp_path / "digestd.toml"
    path.write_text(
        f"""
[database]
url = "{engine.url.render_as_string(hide_password=False)}"

[mail]
from = "Paper Digest <digest@example.org>"
base_url = "https://digest.example.org"

[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
connections = 2
rate_per_second = 500
timeout_seconds = 5
batch_size = 8
render_processes = {render_processes}
"""
    )
    return path


def start_send(processes: Processes, config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DIGESTD_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "digestd", "--config", str(config), "send"]
    return processes.start(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_messages(sink: Sink, count: int, process: subprocess.Popen[bytes]) -> None:
    # polled often: the test kills the sender right after the count-th message
    wait_until(
        lambda: still_running(process) and len(sink.handler.messages) >= count,
        f"{count} messages at the sink",
        progress=lambda: f"{len(sink.handler.messages)} arrived",
        interval=0.002,
    )


def ledger(engine: Engine) -> dict[str, str]:
    with open_session(engine) as session:
        query = select(Subscriber.email, Delivery.status).join(
            Delivery, col(Delivery.subscriber_id) == col(Subscriber.id)
        )
        return dict(session.execute(query).all())


def check_exactly_once(sink: Sink, engine: Engine, emails: list[str]) -> None:
    received = Counter(r for m in sink.handler.messages for r in m.recipients)
    statuses = ledger(engine)
    assert set(statuses) == set(emails)
    for email in emails:
        if statuses[email] == UNKNOWN:
            assert received[email] <= 1, email
        else:
            assert (statuses[email], received[email]) == (SENT, 1), email


def descendants(pid: int) -> set[int]:
    """The process's children (of any of its threads), and theirs."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found |= {child} | descendants(child)
    return found


def wait_until_gone(pids: set[int]) -> None:
    def running() -> set[int]:
        return {pid for pid in pids if Path(f"/proc/{pid}").exists() and "Z" not in state(pid)}

    wait_until(lambda: not running(), "the render processes exited", progress=lambda: f"still running: {running()}")


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.parametrize("render_processes", [0, 1])
def test_sigkill_at_any_moment_then_a_restart_mails_everyone_exactly_once(
    engine: Engine, start_sink: Any, tmp_path: Path, processes: Processes, render_processes: int
) -> None:
    """Killed after the 1st, then 6 more, then 10 more accepted messages; the last run
    finishes. A killed run's render processes do not outlive it."""
    sink: Sink = start_sink()
    sink.handler.delay = 0.01
    emails = seed_due_now(engine)
    config = write_config(tmp_path, engine, sink, render_processes=render_processes)
    for kill_after in (1, 6, 10):
        process = start_send(processes, config)
        wait_for_messages(sink, len(sink.handler.messages) + kill_after, process)
        helpers = descendants(process.pid)
        if kill_after == 1:  # later runs find fewer claimable rows than a batch: no pool for them
            assert len(helpers) >= render_processes
        process.kill()
        process.communicate()
        wait_until_gone(helpers)
    assert len(sink.handler.messages) < SUBSCRIBERS, "the runs finished before they were killed"
    last = start_send(processes, config)
    out, err = last.communicate(timeout=DEADLINE_SECONDS)
    assert last.returncode == 0, err.decode()
    check_exactly_once(sink, engine, emails)


@pytest.mark.parametrize("render_processes", [0, 1])
def test_sigterm_finishes_what_is_on_the_wire_and_exits_0(
    engine: Engine, start_sink: Any, tmp_path: Path, processes: Processes, render_processes: int
) -> None:
    """SIGTERM to the whole process group, as systemd sends it: render processes ignore it
    and the sending process winds them down."""
    sink: Sink = start_sink()
    sink.handler.delay = 0.05
    emails = seed_due_now(engine)
    config = write_config(tmp_path, engine, sink, render_processes=render_processes)
    first = start_send(processes, config)
    wait_for_messages(sink, 3, first)
    helpers = descendants(first.pid)
    os.killpg(first.pid, signal.SIGTERM)  # it leads its process group (see processes.py)
    out, err = first.communicate(timeout=DEADLINE_SECONDS)
    assert first.returncode == 0, err.decode()
    assert b"sent " in out
    wait_until_gone(helpers)
    statuses = ledger(engine)
    assert set(statuses.values()) <= {SENT, PENDING}  # nothing left claimed or sending
    assert sum(s == SENT for s in statuses.values()) == len(sink.handler.messages) < SUBSCRIBERS
    second = start_send(processes, config)
    second.communicate(timeout=DEADLINE_SECONDS)
    assert second.returncode == 0
    check_exactly_once(sink, engine, emails)
    assert set(ledger(engine).values()) == {SENT}
