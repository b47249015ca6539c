"""Scale-out test helpers: a fast bulk seed, a sink process, worker processes, the ledger."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from processes import DEADLINE_SECONDS, Processes, output_tail, read_line
from sqlalchemy import Engine, func, insert
from sqlmodel import col, select

from digestd.models import Delivery, ProfileItem, Subscriber
from digestd.records import PaperRecord
from digestd.store import open_session, save_papers

ROOT = Path(__file__).resolve().parents[3]
SECRET = "test-secret-key-of-32-characters"
TOPICS = ("graph neural networks", "diffusion models", "quantum error correction")


def make_papers(count: int, *, seen: datetime) -> list[PaperRecord]:
    return [
        PaperRecord(
            id=f"2611.{i:05d}",
            title=f"On {TOPICS[i % 3]}: note {i}",
            abstract=f"Short note on {TOPICS[i % 3]}, case {i}.",
            authors=("Ada Lovelace",),
            categories=("cs.LG",),
            published=seen.date(),
        )
        for i in range(count)
    ]


def seed_due(engine: Engine, *, subscribers: int, papers: int = 9, now: datetime | None = None) -> list[str]:
    """`subscribers` active weekly subscribers due an hour ago (bulk INSERTs), each with a
    keyword that matches some of `papers` short papers seen two days ago."""
    now = now or datetime.now(UTC)
    emails = [f"reader{i:06d}@example.org" for i in range(subscribers)]
    base = {"name": "", "status": "active", "frequency": "weekly", "send_day": "mon", "send_time": "08:00"}
    base |= {"timezone": "UTC", "weekdays_only": False, "max_papers": 5, "min_score": 0.0, "format": "both"}
    base |= {"created_at": now - timedelta(days=8), "next_due_at": now - timedelta(hours=1)}
    with open_session(engine) as session:
        save_papers(session, make_papers(papers, seen=now - timedelta(days=2)), now=now - timedelta(days=2))
        session.execute(insert(Subscriber), [base | {"email": email} for email in emails])
        ids = list(session.scalars(select(Subscriber.id).order_by(col(Subscriber.id))))
        items = [{"subscriber_id": i, "kind": "keyword", "value": TOPICS[i % 3], "weight": 1.0} for i in ids]
        session.execute(insert(ProfileItem), items)
    return emails


def write_config(folder: Path, url: str, port: int, **smtp: object) -> Path:
    values = {"connections": 1, "rate_per_second": 100000, "timeout_seconds": 10, "batch_size": 50}
    values |= {"lease_seconds": 3} | smtp
    lines = "\n".join(f"{key} = {value}" for key, value in values.items())
    path = folder / "digestd.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n\n[mail]\nfrom = "Paper Digest <digest@example.org>"\n'
        f'base_url = "https://digest.example.org"\n\n[smtp]\nhost = "127.0.0.1"\nport = {port}\n'
        f'security = "none"\n{lines}\n\n[log]\nlevel = "INFO"\n'
    )
    return path


def environment() -> dict[str, str]:
    return {**os.environ, "DIGESTD_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)}


def start_worker(processes: Processes, config: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "digestd", "--config", str(config), "worker", "--poll", "0.5", *args]
    return processes.start(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def start_sink(processes: Processes, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, str(Path(__file__).with_name("sink_process.py")), str(port)]
    sink = processes.start(command, stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    assert read_line(sink.stdout, "the SMTP sink process is ready").strip() == "ready", output_tail(sink)
    return sink


def stop_sink(sink: subprocess.Popen[str]) -> Counter[str]:
    sink.send_signal(signal.SIGTERM)
    out, _ = sink.communicate(timeout=DEADLINE_SECONDS)
    return Counter(json.loads(out))


def ledger_counts(engine: Engine) -> dict[str, int]:
    with open_session(engine) as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(col(Delivery.status)))
        return {status: int(count) for status, count in rows}


def lease_holders(engine: Engine) -> set[int]:
    """The pids of the workers (on this host) holding claimed or sending rows right now."""
    with open_session(engine) as session:
        owners = session.scalars(
            select(Delivery.lease_owner).distinct().where(col(Delivery.status).in_(("claimed", "sending")))
        )
        return {int(owner.split(":")[1]) for owner in owners if owner}


def ledger(engine: Engine) -> dict[str, str]:
    with open_session(engine) as session:
        query = select(Subscriber.email, Delivery.status).join(
            Delivery, col(Delivery.subscriber_id) == col(Subscriber.id)
        )
        return dict(session.execute(query).all())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
