"""What the source-run tests share: a quick polite fetcher, settings with sources, and
what ended up in the database (papers, a source's state, the `status` text)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import select

from digestd.config import IngestSettings, Settings, SourceSettings
from digestd.ingest.sources.fetch import Fetcher
from digestd.models import Paper, SourceState
from digestd.status import collect_status, format_status
from digestd.store import open_session

NOW = datetime(2026, 7, 14, 6, 0, tzinfo=UTC)


def quick_fetcher() -> Fetcher:
    """Short spacing and backoff, one retry: the tests' servers are on loopback."""
    return Fetcher(contact="ops@example.org", polite_interval=0.05, backoff_seconds=0.01, retries=1)


def settings(*sources: SourceSettings) -> Settings:
    return Settings(sources=sources, ingest=IngestSettings(contact="ops@example.org"))


def papers(engine: Engine) -> dict[str, Paper]:
    with open_session(engine) as session:
        return {paper.id: paper for paper in session.scalars(select(Paper))}


def state(engine: Engine, name: str) -> SourceState:
    with open_session(engine) as session:
        found = session.get(SourceState, name)
        assert found is not None
        session.expunge(found)
        return found


def status_text(engine: Engine, now: datetime = NOW) -> str:
    return format_status(collect_status(engine, now=now))
