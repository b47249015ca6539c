"""The daemon's source jobs: one polite fetcher shared by all (arXiv's spacing holds across
sources), and a hostile answer is that source's error, never the daemon's end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from feed_server import FeedServer, Reply, own_feed, real_feed
from sqlalchemy import Engine
from sqlmodel import select

from digestd.config import IngestSettings, Settings, SourceSettings
from digestd.daemon.scheduler import DaemonJobs
from digestd.mail.render import make_email_builder
from digestd.models import SourceState
from digestd.store import open_session

NOW = datetime(2026, 7, 14, 1, 30, tzinfo=UTC)


def test_source_jobs_at_the_same_minute_keep_three_seconds_and_one_connection(
    engine: Engine, server: FeedServer
) -> None:
    """Two arXiv API sources fire at 01:30 together: one request at a time to the host, 3 s
    apart, whichever source sends it (each job had its own fetcher: 10 ms apart, two connections)."""
    page = real_feed("arxiv_api_atom_2026_old-style-id_astro-ph_0601001.xml")
    url = server.add("/api/query", Reply(page, delay=0.05))
    sources = tuple(
        SourceSettings(name, "arxiv-api", url=url, query="id_list:astro-ph/0601001") for name in ("api-a", "api-b")
    )
    settings = Settings(sources=sources, ingest=IngestSettings(contact="ops@example.org"))
    jobs = DaemonJobs(engine, settings, make_email_builder(settings.mail, secret_key="k"), asyncio.Event(), lambda: NOW)

    async def at_0130() -> None:
        await asyncio.gather(jobs.ingest("api-a"), jobs.ingest("api-b"))

    asyncio.run(at_0130())
    first, second = sorted(hit.at for hit in server.hits("/api/query"))
    assert second - first >= 3.0 and server.max_in_flight == 1


def test_a_huge_retry_after_fails_that_source_job_and_the_next_one_runs(engine: Engine, server: FeedServer) -> None:
    """`Retry-After: 99999999999999` raised OverflowError out of the job: `digestd run` died in
    its start-up catch-up, and systemd restarted it into the same crash."""
    busy = server.add("/busy", Reply(b"", status=503, headers={"Retry-After": "99999999999999"}))
    good = server.add("/good", Reply(own_feed("journal_atom.xml")))
    sources = (SourceSettings("busy", "rss", url=busy), SourceSettings("good", "rss", url=good))
    settings = Settings(sources=sources, ingest=IngestSettings(contact="ops@example.org"))
    jobs = DaemonJobs(engine, settings, make_email_builder(settings.mail, secret_key="k"), asyncio.Event(), lambda: NOW)

    async def catch_up() -> None:
        for source in sources:
            await jobs.ingest(source.name)

    asyncio.run(catch_up())
    with open_session(engine) as session:
        states = {state.name: state for state in session.scalars(select(SourceState))}
        assert states["busy"].consecutive_failures == 1 and "HTTP 503" in (states["busy"].last_error or "")
        assert states["good"].last_new == 1
