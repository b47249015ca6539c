"""Send throughput: 10,000 digests rendered and delivered to a local aiosmtpd sink.

    PYTHONPATH=. python bench/send.py [--subscribers 10000] [--papers 1500] [--connections 1,4,8]

The sink is aiosmtpd in a separate process (accepts and discards); its CPU time is read
from /proc. Measured, on one fresh SQLite file (WAL, migrated by Alembic):
  1. ranking: `prepare_window` + `build_digests` for every subscriber (another module's
     cost, shown for context; its digests are reused below);
  2. render: `EmailBuilder.build` (templates, signed links, headers, MIME) for every digest,
     on one core;
  3. deliver, once per connection count, each in a fresh process: plan the ledger, claim
     in batches, render, and send through the real per-message path (`sending` committed
     before the SMTP transaction, `sent` after the 250); messages/s, peak memory (max RSS),
     and the sink's CPU over the run;
  4. end to end: `digestd send` as a subprocess (ranking included), 4 connections.
Papers come from ../shared/data/abstracts.jsonl.gz when present, else are synthetic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from bench.support import (
    CORPUS,
    ROOT,
    SECRET,
    cpu_seconds,
    free_port,
    reference_seconds,
    reset_ledger,
    seed,
    start_sink,
    stop_sink,
)
from digestd import api
from digestd.config import DatabaseSettings, MailSettings, Settings, SmtpSettings
from digestd.delivery.send import Job, Sender, plan_due
from digestd.delivery.smtp import RateLimiter, SmtpConnection, make_tls_context
from digestd.mail.render import make_email_builder
from digestd.models import Subscriber
from digestd.ranking.digest import build_digests, prepare_window
from digestd.records import Digest
from digestd.store import make_engine, migrate, open_session
from digestd.subscribers import load_profiles


def rank_all(engine: Engine, now: datetime) -> tuple[dict[int, Digest], float]:
    with open_session(engine) as session:
        subscribers = list(session.scalars(select(Subscriber).order_by(Subscriber.id)))
        profiles = load_profiles(session, subscribers)
        start, end = now - timedelta(days=7), now
        papers = api.load_candidates(session, start=start, end=end)
        referenced = api.referenced_papers(session, profiles)
    started = time.perf_counter()
    window = prepare_window(papers, referenced=referenced)
    digests = build_digests(window, profiles, period_start=start, period_end=end, now=now)
    return {d.profile.subscriber_id: d for d in digests}, time.perf_counter() - started


def render_all(digests: dict[int, Digest], now: datetime) -> dict[str, float]:
    """Render every digest as for the sink, which offers 8BITMIME (so text parts are 8bit)."""
    builder = make_email_builder(MailSettings(from_="Digest <digest@example.org>"), secret_key=SECRET)
    builder = builder.for_relay(eight_bit=True)
    started = time.perf_counter()
    sizes = [len(builder.build(d, period="2026-11-30", now=now).data) for d in digests.values()]
    seconds = time.perf_counter() - started
    return {"emails": len(sizes), "seconds": seconds, "bytes": sum(sizes) / len(sizes)}


def settings_for(database: str, port: int, connections: int) -> Settings:
    smtp = SmtpSettings(host="127.0.0.1", port=port, security="none", connections=connections, rate_per_second=1e6)
    mail = MailSettings(from_="Digest <digest@example.org>")
    return Settings(smtp=smtp, mail=mail, secret_key=SECRET, database=DatabaseSettings(url=database))


async def deliver(settings: Settings, engine: Engine, digests: dict[int, Digest]) -> dict[str, float]:
    """The real claim → render → sending → SMTP → sent path, without ranking."""
    builder = make_email_builder(settings.mail, secret_key=SECRET)
    sender = Sender(engine, settings, builder, lambda: datetime.now(UTC), asyncio.Event())
    count = settings.smtp.connections
    queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=200)
    render_seconds = 0.0

    async def produce() -> None:
        nonlocal render_seconds
        try:
            while (claims := sender.claim_batch()) and await sender.learn_relay():
                for claim in claims:
                    started = time.perf_counter()
                    digest = digests[claim.subscriber_id]
                    email = sender.builder.build(digest, period=claim.period, now=datetime.now(UTC))
                    render_seconds += time.perf_counter() - started
                    await queue.put(Job(claim, email))
                    await asyncio.sleep(0)  # let the connections run between renders
        finally:
            for _ in range(count):
                await queue.put(None)

    limiter = RateLimiter(settings.smtp.rate_per_second)
    sender.connections = [SmtpConnection(settings.smtp, make_tls_context(settings.smtp)) for _ in range(count)]
    started = time.perf_counter()
    await asyncio.gather(produce(), *(sender.consume(queue, limiter, c) for c in sender.connections))
    seconds = time.perf_counter() - started
    return {"sent": sender.report.sent, "seconds": seconds, "render_seconds": render_seconds}


def run_deliver(args: argparse.Namespace) -> None:
    engine = make_engine(args.database)
    with open(args.digests, "rb") as handle:
        digests = pickle.load(handle)
    result = asyncio.run(deliver(settings_for(args.database, args.port, args.connections[0]), engine, digests))
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_all(args: argparse.Namespace) -> None:
    print(f"machine: reference loop {reference_seconds():.2f} s (lower is faster)")
    folder = Path(tempfile.mkdtemp(prefix="digestd-bench-send-"))
    database = f"sqlite:///{folder / 'bench.sqlite3'}"
    engine = make_engine(database)
    migrate(engine)
    now = datetime.now(UTC) - timedelta(minutes=1)
    seed(engine, subscribers=args.subscribers, papers=args.papers, now=now)
    digests, rank_seconds = rank_all(engine, now)
    picks = sum(len(d.picks) for d in digests.values()) / len(digests)
    source = "corpus" if CORPUS.exists() else "synthetic"
    print(f"papers {args.papers} ({source}), subscribers {len(digests)}, {picks:.1f} papers per digest")
    print(f"ranking: {rank_seconds:.1f} s, {rank_seconds / len(digests) * 1000:.2f} ms per subscriber")
    rendered = render_all(digests, now)
    per_email = rendered["seconds"] / rendered["emails"] * 1000
    emails, seconds = rendered["emails"], rendered["seconds"]
    print(f"render: {emails:.0f} emails in {seconds:.2f} s = {emails / seconds:.0f} emails/s, {per_email:.2f} ms each")
    print(f"  {rendered['bytes'] / 1024:.1f} KiB per email")
    pickle_path = folder / "digests.pickle"
    pickle_path.write_bytes(pickle.dumps(digests))
    port = free_port()
    sink = start_sink(port)
    try:
        measure_sink_ceiling(digests, port, sink.pid, now)
        measure_delivery(args, engine, database, pickle_path, port, sink.pid, now)
        if args.end_to_end:
            measure_end_to_end(args, engine, database, folder, port, sink.pid, now)
    finally:
        print(f"sink: {stop_sink(sink)}")
        print(f"machine: reference loop {reference_seconds():.2f} s")
        engine.dispose()


def measure_sink_ceiling(digests: dict[int, Digest], port: int, sink: int, now: datetime) -> None:
    """The same message sent 2,000 times by bare `SmtpConnection`s (no ledger, no render):
    what this machine's sink and SMTP client manage on their own."""
    builder = make_email_builder(MailSettings(from_="Digest <digest@example.org>"), secret_key=SECRET)
    email = builder.for_relay(eight_bit=True).build(next(iter(digests.values())), period="2026-11-30", now=now)
    for count in (1, 4):
        smtp = SmtpSettings(host="127.0.0.1", port=port, security="none")

        async def send_all(connection: SmtpConnection, share: int) -> None:
            for _ in range(share):
                await connection.send(email)
            await connection.quit()

        async def run(smtp: SmtpSettings = smtp, count: int = count) -> None:
            connections = [SmtpConnection(smtp, make_tls_context(smtp)) for _ in range(count)]
            await asyncio.gather(*(send_all(c, 2000 // count) for c in connections))

        before, started = cpu_seconds(sink), time.perf_counter()
        asyncio.run(run())
        seconds = time.perf_counter() - started
        sink_cpu = cpu_seconds(sink) - before
        rate, share = 2000 / seconds, sink_cpu / seconds * 100
        print(f"SMTP only, {count} connection(s): {rate:.0f} messages/s; sink CPU {share:.0f}%", flush=True)


def measure_delivery(
    args: argparse.Namespace, engine: Engine, database: str, pickle_path: Path, port: int, sink: int, now: datetime
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print("| connections | messages | seconds | messages/s | render ms/email | peak RSS MB | sink CPU s | sink CPU % |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for connections in args.connections:
        reset_ledger(engine, now)
        plan_due(engine, now=datetime.now(UTC))
        before = cpu_seconds(sink)
        command = [sys.executable, __file__, "deliver", "--database", database, "--digests", str(pickle_path)]
        command += ["--port", str(port), "--connections", str(connections)]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout)
        sink_cpu = cpu_seconds(sink) - before
        rate = result["sent"] / result["seconds"]
        render = result["render_seconds"] / result["sent"] * 1000
        cells = [connections, result["sent"], f"{result['seconds']:.1f}", f"{rate:.0f}", f"{render:.2f}"]
        cells += [f"{result['max_rss_mb']:.0f}", f"{sink_cpu:.1f}", f"{sink_cpu / result['seconds'] * 100:.0f}"]
        print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)


def finished_children_cpu() -> float:
    """CPU of this process's finished children (and theirs): `digestd send` with its render processes."""
    return cpu_seconds(os.getpid(), children=True) - cpu_seconds(os.getpid())


def measure_end_to_end(
    args: argparse.Namespace, engine: Engine, database: str, folder: Path, port: int, sink: int, now: datetime
) -> None:
    """`digestd send` as a user runs it (ranking and process start included), rendering in
    the sending process and then in a render process (`smtp.render_processes`)."""
    columns = "connections | render processes | seconds | messages/s | digestd CPU s | sink CPU s | sink CPU %"
    print(f"| `digestd send` | {columns} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for processes in args.render_processes:
        for connections in args.end_to_end_connections:
            reset_ledger(engine, now)
            config = folder / "digestd.toml"
            smtp = f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\nconnections = {connections}\n'
            smtp += f"rate_per_second = 1000000\nrender_processes = {processes}\n"
            mail = '[mail]\nfrom = "Digest <digest@example.org>"\n'
            config.write_text(f'[database]\nurl = "{database}"\n{mail}[smtp]\n{smtp}')
            env = {**os.environ, "PYTHONPATH": str(ROOT), "DIGESTD_SECRET_KEY": SECRET}
            before, children, started = cpu_seconds(sink), finished_children_cpu(), time.perf_counter()
            command = [sys.executable, "-m", "digestd", "--config", str(config), "send"]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            seconds = time.perf_counter() - started
            sink_cpu, own_cpu = cpu_seconds(sink) - before, finished_children_cpu() - children
            sent = int(done.stdout.split("sent ")[1].split(",")[0])
            cells = [connections, processes, f"{seconds:.1f}", f"{sent / seconds:.0f}", f"{own_cpu:.1f}"]
            cells += [f"{sink_cpu:.1f}", f"{sink_cpu / seconds * 100:.0f}"]
            print("| end to end | " + " | ".join(str(cell) for cell in cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "deliver"])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=1500)
    parser.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    parser.add_argument("--no-end-to-end", dest="end_to_end", action="store_false")
    parser.add_argument("--end-to-end-connections", type=lambda s: [int(x) for x in s.split(",")], default=[4, 8])
    parser.add_argument("--render-processes", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database", default="")
    parser.add_argument("--digests", default="")
    args = parser.parse_args()
    {"all": run_all, "deliver": run_deliver}[args.mode](args)


if __name__ == "__main__":
    main()
