"""One entry a database cannot store (a NUL byte in a JSON feed's title or abstract: XML
feeds cannot carry one, but JSON can) is dropped and counted; the rest of its feed is
saved, on SQLite and PostgreSQL alike (PostgreSQL refuses NUL in text: the whole run failed)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from feed_server import FeedServer, Reply, real_feed
from runs import NOW, papers, quick_fetcher, settings, state
from sqlalchemy import Engine

from digestd.config import SourceSettings
from digestd.ingest.run import run_sources
from digestd.store import make_engine, migrate


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield engine
        return
    pg = make_engine(request.getfixturevalue("postgres_url"))
    migrate(pg)
    yield pg
    pg.dispose()


@pytest.mark.parametrize(("field", "value"), [("title", "A NUL\x00 title"), ("summary", "An abstract\x00 with a NUL")])
def test_an_unstorable_entry_is_dropped_and_counted_the_feed_is_saved(
    any_engine: Engine, server: FeedServer, field: str, value: str
) -> None:
    entries = json.loads(real_feed("hf_daily_papers_2026-08-21.json"))
    poisoned = entries[3]["paper"]
    poisoned[field] = entries[3][field] = value
    url = server.add("/api/daily_papers", Reply(json.dumps(entries).encode()))
    source = SourceSettings("hf", "hf-daily", url=url)
    with quick_fetcher() as fetcher:
        [report] = run_sources(any_engine, settings(source), now=NOW, fetcher=fetcher)
    assert report.error is None, report.error
    stored = papers(any_engine)
    assert len(stored) == len(entries) - 1 and poisoned["id"] not in stored
    # two days are asked and the same papers served twice: the poisoned entry is dropped twice
    assert "2 entries dropped: a control character in their text" in report.notes
    assert "2 entries dropped" in (state(any_engine, "hf").last_note or "")
