"""The public paper page under load: requests/s and latency percentiles on loopback.

    python -m bench.public_page [--requests 2000] [--baseline-requests 200] [--concurrency 8]

The 14,370 papers of `../shared/data/abstracts.jsonl.gz` go into a fresh SQLite file
(WAL, migrated by Alembic). The real app then runs under uvicorn in its own process on
127.0.0.1, twice: with the list kept per day (as shipped) and, as the baseline measured in
the same run, with a listing that keeps nothing (every request reads its day from the
database and renders it). A client in this process sends `--requests` GETs per address
(`--baseline-requests` to the baseline, which is much slower),
`--concurrency` at a time over keep-alive connections, after an untimed warm-up; the two
servers take turns address by address so that the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.corpus import load_corpus
from bench.support import ROOT

SECRET = "bench-secret-key"
ADDRESSES = (
    ("front page (latest day, 301 papers)", "/"),
    ("largest day (470 papers), page 1", "/papers/2025-07-01"),
    ("largest day, filtered to cs.CV", "/papers/2025-07-01?category=cs.CV"),
    ("largest day, searched (never kept)", "/papers/2025-07-01?q=diffusion+model"),
    ("an old day, page 2", "/papers/2025-03-25?page=2"),
)


def fill_database(path: Path) -> int:
    from digestd.store import make_engine, migrate, open_session, save_papers

    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    papers = load_corpus()
    with open_session(engine) as session:
        save_papers(session, papers, now=datetime(2026, 7, 2, tzinfo=UTC))
    engine.dispose()
    return len(papers)


def serve(database: Path, port: int, keep: bool) -> None:
    """The server process: the real app under uvicorn, its list kept per day or not at all."""
    import uvicorn

    from digestd.config import MailSettings, Settings
    from digestd.store import make_engine
    from digestd.web.app import create_app
    from digestd.web.listing import PaperListing

    async def discard(message: object) -> None:
        return None

    settings = Settings(mail=MailSettings(base_url=f"http://127.0.0.1:{port}"), secret_key=SECRET)
    listing = PaperListing() if keep else PaperListing(fresh_seconds=0.0)
    app = create_app(settings, make_engine(f"sqlite:///{database}"), send_message=discard, paper_listing=listing)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(database: Path, port: int, *, keep: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.public_page", "--serve", str(database), "--port", str(port)]
    process = subprocess.Popen([*command, *(["--keep"] if keep else [])], cwd=ROOT)
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/static/style.css", timeout=5)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server on port {port} did not start")


async def load(base_url: str, path: str, *, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """(seconds for all requests, each request's seconds); every answer must be 200."""
    import httpx

    latencies: list[float] = []
    remaining = requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        for _ in range(concurrency * 2):  # warm-up: connections open, the day kept
            await client.get(path)
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(share) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="timed GETs per address")
    parser.add_argument("--baseline-requests", type=int, default=200, help="timed GETs per address, baseline")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.keep)
        return
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "digestd.sqlite3"
        started = time.perf_counter()
        count = fill_database(database)
        print(f"{count:,} papers loaded in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs")
        servers = {"kept": (free_port(), True), "baseline": (free_port(), False)}
        requests = {"kept": args.requests, "baseline": args.baseline_requests}
        running = [start_server(database, port, keep=keep) for port, keep in servers.values()]
        try:
            print(f"{args.requests} GETs per address ({args.baseline_requests} to the baseline), ", end="")
            print(f"{args.concurrency} at a time")
            print(f"{'address':<40} {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'speed-up':>9}")
            for label, path in ADDRESSES:
                rates = {}
                for name, (port, _) in servers.items():
                    elapsed, latencies = asyncio.run(
                        load(f"http://127.0.0.1:{port}", path, requests=requests[name], concurrency=args.concurrency)
                    )
                    rates[name] = requests[name] / elapsed
                    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
                    ratio = f"{rates['kept'] / rates['baseline']:.1f}×" if name == "baseline" else ""
                    print(f"{label:<40} {name:<9} {rates[name]:>8.0f} {p50:>8.1f} {p99:>8.1f} {ratio:>9}")
        finally:
            for process in running:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
