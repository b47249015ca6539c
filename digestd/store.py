"""The database: engine, migrations, sessions and paper queries.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys on; its
transactions really begin at BEGIN (not at the first write, as pysqlite would have it),
and `immediate=True` takes the write lock up front. PostgreSQL is used by URL.
Queries are keyword-only functions that take a session.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, func, insert, inspect, text, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from digestd.errors import StoreError
from digestd.identity import canonical_id
from digestd.models import Paper, ProfileItem, Rating, SentPaper
from digestd.records import SEED, PaperRecord

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.dialects import postgresql, sqlite

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_SECONDS = 30
_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit

# The newest migration in migrations/versions/. Written here so that checking a database
# (every command but `init`) reads one row instead of importing Alembic and every revision
# file, a quarter of `digestd status`; a test checks it against Alembic's own answer.
HEAD_REVISION = "0011"


def migrations_dir() -> Path:
    """`migrations/` of a source checkout, or the copy packed into the wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise StoreError("the Alembic migrations are missing from this installation", hint="reinstall digestd")


# RETURNING (planning) came in SQLite 3.35; the JSON functions (the never-twice window)
# are built in from 3.38 and optional before.
SQLITE_NEEDED = (3, 35)


def check_sqlite(version: tuple[int, int, int] = sqlite3.sqlite_version_info, *, has_json: bool = True) -> None:
    """Refuse, with a clear message, an SQLite too old for digestd's statements (RHEL 8's
    Python links SQLite 3.26), instead of an SQL error in the middle of a send."""
    if version >= SQLITE_NEEDED and has_json:
        return
    found = ".".join(map(str, version)) + ("" if has_json else " without its JSON functions")
    raise StoreError(
        f"digestd needs SQLite 3.35 or newer with its JSON functions; this Python has SQLite {found}",
        hint="use a Python linked with a newer SQLite (python.org's and Debian 12's are), or PostgreSQL (database.url)",
    )


def sqlite_has_json() -> bool:
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("SELECT json_valid('[]')")
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()
    return True


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


PRIVATE_FILE_MODE = 0o600  # the database holds subscribers' addresses and interests


def create_private(path: Path) -> None:
    """Create `path` empty and readable by its owner only, unless it exists: whatever the
    process umask, as SQLite would create it 0644. An empty file is an empty database, and
    SQLite gives its `-wal` and `-shm` files the database file's mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        pass


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite the file's folder is created if missing, and the
    file itself (0600)."""
    if url.startswith("sqlite"):
        check_sqlite(has_json=sqlite_has_json())
    path = _sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            create_private(path)
        except OSError as error:
            raise StoreError(f"cannot create the database {path}: {error.strerror}") from None
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's configuration for digestd's migrations; `engine` is the database they run on."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the database to the newest revision; returns (before, after)."""
    from alembic import command

    before = current_revision(engine)
    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as error:
        raise StoreError(f"cannot migrate the database: {error.orig}") from None
    return before, HEAD_REVISION


def alembic_head_revision() -> str | None:
    """The newest revision as Alembic finds it in the migration files (what `HEAD_REVISION` must say)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (Alembic's `alembic_version` row), None when empty."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.scalar(text("SELECT version_num FROM alembic_version"))
    except OperationalError as error:
        raise StoreError(f"cannot open the database: {error.orig}", hint="check database.url") from None


def check_migrated(engine: Engine) -> None:
    """Raise a `StoreError` with a hint unless the database is at the newest revision."""
    current = current_revision(engine)
    if current is None:
        raise StoreError("the database is empty", hint="run `digestd init` first")
    if current != HEAD_REVISION:
        raise StoreError(
            f"the database is at revision {current}, this digestd needs {HEAD_REVISION}",
            hint="run `digestd init` to migrate it",
        )


def insert_on_conflict(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` that can take `on_conflict_do_nothing` or `on_conflict_do_update`.
    SQLite and PostgreSQL write the same `ON CONFLICT` SQL; SQLAlchemy only spells it per
    dialect, so this picks the construct by the dialect's name (`engine.dialect.name`)."""
    # Imported here: the PostgreSQL dialect costs an SQLite-only `digestd status` 20 ms.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


@contextmanager
def open_session(engine: Engine, *, immediate: bool = False) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error.

    `immediate=True` takes SQLite's write lock at BEGIN, so read-then-write is atomic."""
    connection = engine.connect()
    if immediate:
        connection = connection.execution_options(sqlite_immediate=True)
    try:
        with Session(bind=connection) as session, connection.begin():
            yield session
            session.flush()
    finally:
        connection.close()


# --- papers -----------------------------------------------------------------------------


def _paper_row(record: PaperRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": record.id,
        "version": record.version,
        "title": record.title,
        "abstract": record.abstract,
        "authors": list(record.authors),
        "categories": list(record.categories),
        "primary_category": record.primary_category,
        "published": record.published,
        "updated": record.updated,
        "doi": record.doi,
        "abs_url": record.abs_url,
        "pdf_url": record.pdf_url,
        "sources": [record.source] if record.source else [],
        "popularity": record.popularity,
        "ai_summary": record.ai_summary,
        "ai_keywords": list(record.ai_keywords),
        "first_seen": now,
        "last_seen": now,
    }


def merge_paper(paper: Paper, record: PaperRecord, now: datetime) -> bool:
    """Fold what `record` adds into `paper`; True when the paper's content changed.

    A newer version replaces title and abstract; fields the paper lacks are filled;
    popularity keeps the highest count; `first_seen` never moves (so the paper is not
    "new" again)."""
    changed = False
    newer = record.version is not None and (paper.version is None or record.version > paper.version)
    updates: dict[str, Any] = {}
    if newer:
        updates.update(version=record.version, title=record.title, abstract=record.abstract)
        if record.authors:
            updates["authors"] = list(record.authors)
        if record.updated:
            updates["updated"] = record.updated
    for name in ("primary_category", "published", "doi", "abs_url", "pdf_url", "ai_summary"):
        if getattr(paper, name) is None and getattr(record, name) is not None:
            updates[name] = getattr(record, name)
    if not paper.authors and record.authors:
        updates["authors"] = list(record.authors)
    categories = list(dict.fromkeys([*paper.categories, *record.categories]))
    if categories != paper.categories:
        updates["categories"] = categories
    if record.ai_keywords and not paper.ai_keywords:
        updates["ai_keywords"] = list(record.ai_keywords)
    if record.popularity is not None and (paper.popularity or 0) < record.popularity:
        updates["popularity"] = record.popularity
    for name, value in updates.items():
        if getattr(paper, name) != value:
            setattr(paper, name, value)
            changed = True
    if record.source and record.source not in paper.sources:
        paper.sources = [*paper.sources, record.source]
    paper.last_seen = now
    return changed


def merge_records(records: Iterable[PaperRecord]) -> list[PaperRecord]:
    """One record per id (the highest version wins; the first of equal versions)."""
    best: dict[str, PaperRecord] = {}
    for record in records:
        kept = best.get(record.id)
        if kept is None or (record.version or 0) > (kept.version or 0):
            best[record.id] = record
    return list(best.values())


def _known_by_id(record: PaperRecord) -> bool:
    """True for a record with a real id (an arXiv id), not one made from its DOI or title."""
    return not record.id.startswith(("doi:", "title:"))


def resolve_doi_ids(session: Session, records: Sequence[PaperRecord]) -> list[PaperRecord]:
    """Records known only by DOI (`doi:...`) take the id of a paper with that DOI, stored or
    in the same batch (e.g. the arXiv preprint of a journal article), so the two are one paper."""
    dois = {record.id.removeprefix("doi:") for record in records if record.id.startswith("doi:")}
    if not dois:
        return list(records)
    owners = {canonical_id(doi=r.doi)[4:]: r.id for r in records if r.doi and _known_by_id(r)}
    wanted = sorted(dois)
    for start in range(0, len(wanted), _CHUNK):
        query = select(Paper.id, Paper.doi).where(func.lower(Paper.doi).in_(wanted[start : start + _CHUNK]))
        owners.update(
            {str(doi).lower(): paper_id for paper_id, doi in session.execute(query) if paper_id != f"doi:{doi}"}
        )
    return [replace(record, id=owners[record.id[4:]]) if record.id[4:] in owners else record for record in records]


def adopt_doi_papers(session: Session, records: Sequence[PaperRecord]) -> int:
    """The other direction: a stored paper known only by its DOI (a journal item that came
    first) takes the id of a record carrying that DOI (its arXiv preprint), and so do the
    records that point at it (never-twice records, ratings, seed papers). `first_seen`
    stays, so the paper is not new again. Returns how many papers changed id."""
    renames = {canonical_id(doi=r.doi): r.id for r in records if r.doi and _known_by_id(r)}
    if not renames:
        return 0
    wanted = sorted(set(renames) | set(renames.values()))
    stored: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        stored.update(session.scalars(select(Paper.id).where(col(Paper.id).in_(wanted[start : start + _CHUNK]))))
    moved = 0
    for old, new in renames.items():
        if old not in stored or new in stored:  # nothing to adopt, or both exist already: left as they are
            continue
        session.execute(update(Paper).where(col(Paper.id) == old).values(id=new))
        session.execute(update(SentPaper).where(col(SentPaper.paper_id) == old).values(paper_id=new))
        session.execute(update(Rating).where(col(Rating.paper_id) == old).values(paper_id=new))
        seeds = update(ProfileItem).where(col(ProfileItem.kind) == SEED, col(ProfileItem.value) == old)
        session.execute(seeds.values(value=new))
        log.info("paper %s is now %s (its preprint arrived)", old, new)
        moved += 1
    return moved


def save_papers(session: Session, records: Sequence[PaperRecord], *, now: datetime) -> tuple[int, int]:
    """Insert new papers and merge known ones (one paper per DOI, whichever of the journal
    item and the preprint came first); returns (new, updated)."""
    adopt_doi_papers(session, records)
    unique = merge_records(resolve_doi_ids(session, records))
    new = updated = 0
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        known = {
            paper.id: paper for paper in session.scalars(select(Paper).where(col(Paper.id).in_([r.id for r in chunk])))
        }
        fresh = [_paper_row(record, now) for record in chunk if record.id not in known]
        if fresh:
            session.execute(insert(Paper), fresh)
            new += len(fresh)
        for record in chunk:
            if record.id in known and merge_paper(known[record.id], record, now):
                updated += 1
        session.flush()
    return new, updated


def to_record(paper: Paper) -> PaperRecord:
    return PaperRecord(
        id=paper.id,
        title=paper.title,
        abstract=paper.abstract,
        authors=tuple(paper.authors),
        categories=tuple(paper.categories),
        primary_category=paper.primary_category,
        published=paper.published,
        updated=paper.updated,
        version=paper.version,
        doi=paper.doi,
        abs_url=paper.abs_url,
        pdf_url=paper.pdf_url,
        source=",".join(paper.sources),
        popularity=paper.popularity,
        ai_summary=paper.ai_summary,
        ai_keywords=tuple(paper.ai_keywords),
    )


def load_papers_published(session: Session, *, since: date, until: date) -> list[PaperRecord]:
    """Papers published between `since` and `until`, both inclusive."""
    query = select(Paper).where(col(Paper.published) >= since, col(Paper.published) <= until)
    return [to_record(paper) for paper in session.scalars(query)]


def load_papers_seen(session: Session, *, since: datetime, until: datetime) -> list[PaperRecord]:
    """Papers that first reached this database in [since, until)."""
    query = select(Paper).where(Paper.first_seen >= since, col(Paper.first_seen) < until)
    return [to_record(paper) for paper in session.scalars(query)]


def load_papers_by_id(session: Session, ids: Iterable[str]) -> list[PaperRecord]:
    wanted = list(dict.fromkeys(ids))
    result: list[PaperRecord] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        result.extend(to_record(p) for p in session.scalars(select(Paper).where(col(Paper.id).in_(chunk))))
    return result


def count_papers(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Paper)) or 0)
