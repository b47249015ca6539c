"""Upgrading to revision 0007, on SQLite and PostgreSQL: addresses stored with a Unicode
domain (before 0007 digestd kept them as typed) get their ASCII (IDNA) form, so the CLI
finds them and a new sign-up meets the same row; a clash or a non-address is left alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, text

from digestd.store import alembic_config, make_engine, migrate, open_session
from digestd.subscribers import get_subscriber

STORED = {
    1: "ascii@bücher.example.com",  # becomes ascii@xn--bcher-kva.example.com
    2: "zoë@münchen.example",  # the local part stays, the domain becomes xn--mnchen-3ya.example
    3: "taken@xn--caf-dma.example",  # already ASCII
    4: "taken@café.example",  # its ASCII form is row 3's: left as it is
    5: "plain@example.org",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Engine]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else sqlite_url
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), "0006")
    with engine.begin() as connection:
        for sid, email in STORED.items():
            connection.execute(
                text(
                    "INSERT INTO subscriber (id, email, name, status, frequency, send_day, send_time, timezone, "
                    "weekdays_only, category_filter, max_papers, min_score, format, created_at, link_key) VALUES "
                    "(:id, :email, '', 'active', 'weekly', 'mon', '08:00', 'UTC', false, false, 20, 0, 'both', :at, "
                    ":key)"
                ),
                {"id": sid, "email": email, "at": datetime(2026, 11, 1, tzinfo=UTC), "key": f"key-{sid}"},
            )
    yield engine
    engine.dispose()


def test_the_upgrade_stores_domains_in_their_ascii_form(old_store: Engine) -> None:
    migrate(old_store)
    with old_store.connect() as connection:
        emails = dict(connection.execute(text("SELECT id, email FROM subscriber ORDER BY id")).all())
    assert emails == {
        1: "ascii@xn--bcher-kva.example.com",
        2: "zoë@xn--mnchen-3ya.example",
        3: "taken@xn--caf-dma.example",
        4: "taken@café.example",
        5: "plain@example.org",
    }
    with open_session(old_store) as session:  # found by the address as a user types it
        assert get_subscriber(session, "Ascii@Bücher.Example.com").id == 1
