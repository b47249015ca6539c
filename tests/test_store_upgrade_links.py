"""Upgrading a database with subscribers to link keys (revision 0006), on SQLite and PostgreSQL:
nothing that references a subscriber is lost, each gets its own key, ids are never reused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, func, text
from sqlmodel import select

from digestd.config import DigestSettings
from digestd.models import Delivery, ProfileItem, Rating, SentPaper, Subscriber
from digestd.store import alembic_config, make_engine, migrate, open_session
from digestd.subscribers import SubscriberInput, add_subscriber, remove_subscriber

BEFORE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Engine]:
    """A database at revision 0005 holding three subscribers with profiles, ratings and a ledger."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else sqlite_url
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), "0005")
    with engine.begin() as connection:
        for sid in (1, 2, 3):
            connection.execute(
                text(
                    "INSERT INTO subscriber (email, name, status, frequency, send_day, send_time, timezone, "
                    "weekdays_only, category_filter, max_papers, min_score, format, created_at) VALUES "
                    "(:email, '', 'active', 'weekly', 'mon', '08:00', 'UTC', false, false, 20, 0, 'both', :at)"
                ),
                {"email": f"s{sid}@example.org", "at": BEFORE},
            )
            connection.execute(
                text("INSERT INTO profile_item (subscriber_id, kind, value, weight) VALUES (:id, 'keyword', 'x', 1)"),
                {"id": sid},
            )
            connection.execute(
                text("INSERT INTO rating (subscriber_id, paper_id, value, created_at) VALUES (:id, 'p', 1, :at)"),
                {"id": sid, "at": BEFORE},
            )
            connection.execute(
                text("INSERT INTO sent_paper (subscriber_id, paper_id, sent_at) VALUES (:id, 'p', :at)"),
                {"id": sid, "at": BEFORE},
            )
            connection.execute(
                text(
                    "INSERT INTO delivery (subscriber_id, period, period_start, period_end, status, attempts, "
                    "paper_ids, created_at, updated_at) VALUES (:id, '2026-11-02', :at, :at, 'sent', 1, '[]', :at, :at)"
                ),
                {"id": sid, "at": BEFORE},
            )
    yield engine
    engine.dispose()


def test_the_upgrade_keeps_everything_and_gives_each_subscriber_a_key(old_store: Engine) -> None:
    started = datetime.now(UTC)
    migrate(old_store)
    command.check(alembic_config(old_store))
    with open_session(old_store) as session:
        subscribers = list(session.scalars(select(Subscriber).order_by(Subscriber.id)))
        for table in (ProfileItem, Rating, SentPaper, Delivery):
            assert session.scalar(select(func.count()).select_from(table)) == 3, table.__name__
        keys = {s.link_key for s in subscribers}
        assert len(keys) == 3 and all(len(key) >= 22 for key in keys)
        for found in subscribers:  # unsubscribe links mailed before the upgrade: 30 more days
            assert found.legacy_links_until is not None
            assert started + timedelta(days=30) <= found.legacy_links_until <= datetime.now(UTC) + timedelta(days=30)
        new = add_subscriber(
            session, SubscriberInput("new@example.org", keywords="optics"), defaults=DigestSettings(), now=BEFORE
        )
        assert new.legacy_links_until is None and new.link_key not in keys
    with open_session(old_store) as session:
        remove_subscriber(session, "new@example.org")
        remove_subscriber(session, "s3@example.org")
    with open_session(old_store) as session:
        again = add_subscriber(
            session,
            SubscriberInput("again@example.org", keywords="optics"),
            defaults=DigestSettings(),
            now=BEFORE,
        )
        assert again.id == 5  # neither 3 nor 4 comes back
        # foreign keys are still enforced after the migration
        assert (
            session.get_bind().dialect.name == "postgresql"
            or session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        )
