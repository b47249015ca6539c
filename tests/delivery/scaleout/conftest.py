"""Fixtures of the scale-out tests (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from digestd.store import make_engine, migrate


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    """A fresh PostgreSQL database, migrated to head by Alembic."""
    engine = make_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()
