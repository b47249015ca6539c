"""Upgrading to revision 0010 (delivery.sections), on SQLite and PostgreSQL: digests sent
before keep their papers and show on the web as one list, in the order they were mailed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, text

from digestd.models import Delivery, Subscriber
from digestd.store import alembic_config, make_engine, migrate, open_session
from digestd.web.digests import load_digests, load_past_digests

SENT_AT = datetime(2026, 11, 2, 8, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Engine]:
    """A database at revision 0007 with one subscriber, two papers and a digest sent of them."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else sqlite_url
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), "0007")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscriber (email, name, status, frequency, send_day, send_time, timezone, weekdays_only,"
                " category_filter, max_papers, min_score, format, created_at, link_key) VALUES ('a@example.org', '',"
                " 'active', 'weekly', 'mon', '08:00', 'UTC', false, false, 20, 0, 'both', :at, 'key-of-a')"
            ),
            {"at": SENT_AT},
        )
        for paper_id in ("2611.00002", "2611.00001"):
            connection.execute(
                text(
                    "INSERT INTO paper (id, title, abstract, authors, categories, sources, ai_keywords, first_seen,"
                    " last_seen) VALUES (:id, :title, 'text', '[]', '[]', '[]', '[]', :at, :at)"
                ),
                {"id": paper_id, "title": f"Paper {paper_id}", "at": SENT_AT},
            )
        connection.execute(
            text(
                "INSERT INTO delivery (subscriber_id, period, period_start, period_end, status, attempts, paper_ids,"
                " created_at, updated_at, sent_at) VALUES (1, '2026-11-02', :at, :at, 'sent', 1,"
                """ '["2611.00002", "2611.00001"]', :at, :at, :at)"""
            ),
            {"at": SENT_AT},
        )
    yield engine
    engine.dispose()


def test_digests_sent_before_show_their_papers_in_order(old_store: Engine) -> None:
    migrate(old_store)
    with open_session(old_store) as session:
        row = session.get(Delivery, 1)
        assert row is not None and row.sections is None and row.paper_ids == ["2611.00002", "2611.00001"]
        subscriber = session.get(Subscriber, 1)
        assert subscriber is not None
        ((period, digest),) = load_digests(session, subscriber)
        assert load_past_digests(session, 1)[0].papers == 2
    assert period == "2026-11-02" and digest.generated_at == SENT_AT
    assert [(s.label, [p.paper.title for p in s.picks]) for s in digest.sections] == [
        ("", ["Paper 2611.00002", "Paper 2611.00001"])
    ]
