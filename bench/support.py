"""What the delivery benchmarks (`send.py`, `scaleout.py`) share: the papers and
subscribers they seed, the SMTP sink they deliver to, and the CPU readings.

    python -m bench.support PORT        # the sink alone: accepts, discards, counts
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, update
from sqlmodel import col, select

from digestd.models import Delivery, ProfileItem, SentPaper, Subscriber
from digestd.records import PaperRecord
from digestd.store import open_session, save_papers

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "abstracts.jsonl.gz"
SECRET = "bench-secret-key"
TOPICS = (
    "graph neural networks, message passing",
    "diffusion models, score matching",
    "reinforcement learning, policy gradient",
    "large language models, instruction tuning",
    "contrastive learning, representation learning",
    "quantum error correction, surface code",
    "dark matter, galaxy formation",
    "bayesian optimization, gaussian processes",
    "federated learning, privacy",
    "image segmentation, transformers",
)


def load_papers(count: int, seen: datetime) -> list[PaperRecord]:
    """The corpus's first `count` papers, else synthetic ones from the topics' words."""
    if CORPUS.exists():
        with gzip.open(CORPUS, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in itertools.islice(handle, count)]
    else:
        words = [w.strip() for topic in TOPICS for w in topic.split(",")]
        rng = random.Random(1)
        rows = [
            {"id": f"2611.{i:05d}", "title": f"On {rng.choice(words)} and {rng.choice(words)}"}
            | {"abstract": " ".join(rng.choice(words) for _ in range(60)) + "."}
            | {"authors": [f"Author{j} Name{j}" for j in range(rng.randint(1, 12))]}
            for i in range(count)
        ]
    return [
        PaperRecord(
            id=row["id"],
            title=row["title"],
            abstract=row["abstract"],
            authors=tuple(row.get("authors") or ("Anonymous Author",)),
            categories=tuple(row.get("categories") or ()),
            published=seen.date(),
        )
        for row in rows
    ]


def seed(engine: Engine, *, subscribers: int, papers: int, now: datetime) -> None:
    """Papers from two days ago and `subscribers` weekly subscribers, due `now` (bulk
    INSERTs), two keywords each from one of the topics."""
    with open_session(engine) as session:
        save_papers(session, load_papers(papers, now - timedelta(days=2)), now=now - timedelta(days=2))
        base = {"status": "active", "frequency": "weekly", "send_day": "mon", "send_time": "08:00"}
        base |= {"timezone": "UTC", "weekdays_only": False, "max_papers": 20, "min_score": 0.0, "format": "both"}
        base |= {"created_at": now - timedelta(days=8), "next_due_at": now}
        rows = [base | {"email": f"reader{i:06d}@example.org", "name": f"Reader {i}"} for i in range(subscribers)]
        session.execute(insert(Subscriber), rows)
        ids = list(session.scalars(select(Subscriber.id).order_by(col(Subscriber.id))))
        items = [
            {"subscriber_id": sid, "kind": "keyword", "value": term.strip(), "weight": 1.0}
            for sid in ids
            for term in TOPICS[sid % len(TOPICS)].split(",")
        ]
        session.execute(insert(ProfileItem), items)


def reset_ledger(engine: Engine, now: datetime) -> None:
    """An empty ledger and never-twice history, every subscriber due `now`."""
    with open_session(engine) as session:
        session.execute(delete(Delivery))
        session.execute(delete(SentPaper))
        session.execute(update(Subscriber).values(next_due_at=now, last_digest_at=None))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of a process (and of its finished children, if asked), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def reference_seconds() -> float:
    """Seconds this machine takes for a fixed pure-Python loop, printed beside the figures:
    the VMs these benchmarks run on differ by half from one to the next, and from hour to
    hour, in just this kind of work."""
    started = time.process_time()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.process_time() - started


def start_sink(port: int) -> subprocess.Popen[str]:
    """The sink in its own process (so its CPU can be read apart), once it accepts."""
    command = [sys.executable, "-m", "bench.support", str(port)]
    sink = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    return sink


def stop_sink(sink: subprocess.Popen[str]) -> str:
    """Stop the sink; what it says it took."""
    sink.send_signal(signal.SIGTERM)
    return sink.communicate(timeout=60)[0].strip()


def run_sink(port: int) -> None:
    """aiosmtpd accepting and discarding; on SIGTERM, prints how many messages it took."""
    from aiosmtpd.controller import Controller

    class Discard:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Discard.count += 1
            return "250 OK"

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # for sigwait, in every thread
    controller = Controller(Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})
    controller.stop()
    print(json.dumps({"messages": Discard.count}), flush=True)


if __name__ == "__main__":
    run_sink(int(sys.argv[1]))
