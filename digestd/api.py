"""The core operations: what the CLI, the daemon and the web call.

Each takes the settings and an engine (or session) explicitly and `now` as an argument;
the stages they chain (store → digest → render) stay pure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, or_
from sqlmodel import Session, col, select

from digestd.config import Settings
from digestd.embedding.encoder import Encoder
from digestd.errors import InputError
from digestd.models import Paper, ProfileItem, Rating, SentPaper, Subscriber
from digestd.records import ACTIVE, SEED, Digest, PaperRecord, Profile
from digestd.schedule import Period, period_key, period_length
from digestd.store import (
    check_migrated,
    load_papers_by_id,
    load_papers_published,
    make_engine,
    migrate,
    open_session,
    to_record,
)
from digestd.subscribers import get_subscriber, load_profiles

log = logging.getLogger(__name__)

# A paper first seen in a period but published long before it (a bulk import, a feed
# that re-lists old work) is not "new": candidates must be published at most this long
# before the period starts.
STALE_AFTER = timedelta(days=30)


def open_database(settings: Settings) -> Engine:
    """An engine on a migrated database, or a `StoreError` telling how to get one."""
    engine = make_engine(settings.database_url)
    check_migrated(engine)
    return engine


def init_database(settings: Settings) -> tuple[str | None, str]:
    engine = make_engine(settings.database_url)
    try:
        return migrate(engine)
    finally:
        engine.dispose()


def next_period(subscriber: Subscriber, now: datetime) -> Period:
    """The period the subscriber's next digest covers: since their previous digest (first
    digest: one period back) up to when it is due."""
    end = subscriber.next_due_at or now
    start = subscriber.last_digest_at or end - period_length(subscriber.frequency)
    return Period(start=start, end=end, key=period_key(end, subscriber.timezone))


def load_candidates(session: Session, *, start: datetime, end: datetime) -> list[PaperRecord]:
    """Papers that reached us in [start, end) and are not old news."""
    query = select(Paper).where(*_candidate_conditions(start, end))
    return [to_record(paper) for paper in session.scalars(query)]


def _candidate_conditions(start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    oldest = (start - STALE_AFTER).date()
    return (
        col(Paper.first_seen) >= start,
        col(Paper.first_seen) < end,
        or_(col(Paper.published).is_(None), col(Paper.published) >= oldest),
    )


def referenced_papers(session: Session, profiles: Sequence[Profile]) -> list[PaperRecord]:
    """Seed, liked and disliked papers: ranking needs their text even when they are old."""
    ids = {pid for profile in profiles for pid in (*profile.seeds, *profile.liked, *profile.disliked)}
    return load_papers_by_id(session, sorted(ids))


def referenced_by_active(session: Session) -> list[PaperRecord]:
    """The seed and rated papers of every active subscriber: what a run's windows hold."""
    active = select(Subscriber.id).where(Subscriber.status == ACTIVE)
    seeds = select(ProfileItem.value).where(ProfileItem.kind == SEED, col(ProfileItem.subscriber_id).in_(active))
    rated = select(Rating.paper_id).where(col(Rating.subscriber_id).in_(active))
    ids = set(session.scalars(seeds)) | set(session.scalars(rated))
    return load_papers_by_id(session, sorted(ids))


def anyone_trending(session: Session) -> bool:
    """Some active subscriber asked for trending papers."""
    query = select(Subscriber.id).where(col(Subscriber.trending), Subscriber.status == ACTIVE).limit(1)
    return session.scalar(query) is not None


def count_readers(session: Session, paper_ids: Sequence[str]) -> dict[str, int]:
    """Per paper: the readers it was sent to plus those who liked it (what trending ranks by
    when no source gave upvotes)."""
    counts: dict[str, int] = {}
    ids = list(dict.fromkeys(paper_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for table, liked in ((SentPaper, None), (Rating, col(Rating.value) > 0)):
            query = select(table.paper_id, func.count()).where(col(table.paper_id).in_(chunk))
            query = query if liked is None else query.where(liked)
            for paper_id, count in session.execute(query.group_by(col(table.paper_id))):
                counts[paper_id] = counts.get(paper_id, 0) + int(count)
    return counts


def _day_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    return datetime.combine(since, time(), UTC), datetime.combine(until + timedelta(days=1), time(), UTC)


def preview_digest(
    engine: Engine,
    email: str,
    *,
    now: datetime,
    since: date | None = None,
    until: date | None = None,
    encoder: Encoder | None = None,
) -> Digest:
    """The digest `email` would get: for papers published in [since, until] if given,
    else for their next period. Nothing is written but the vectors `encoder` makes (ranked
    without them if it fails)."""
    if since and until and since > until:
        raise InputError(f"--since {since} is after --until {until}")
    with open_session(engine) as session:
        subscriber = get_subscriber(session, email)
        profile = load_profiles(session, [subscriber])[0]
        if since or until:
            first, last = since or date(1900, 1, 1), until or now.date()
            papers = load_papers_published(session, since=first, until=last)
            start, end = _day_bounds(first, last)
        else:
            period = next_period(subscriber, now)
            start, end = period.start, period.end
            papers = load_candidates(session, start=start, end=end)
        referenced = referenced_papers(session, [profile])
        readers = count_readers(session, [paper.id for paper in papers]) if profile.trending else {}
    from digestd.ranking.digest import build_digests, prepare_window  # here: scikit-learn is slow to import

    vectors, queries = embed_for_preview(engine, encoder, [*papers, *referenced], profile)
    window = prepare_window(papers, referenced=referenced, readers=readers, vectors=vectors)
    return build_digests(window, [profile], period_start=start, period_end=end, now=now, query_vectors=queries)[0]


def embed_for_preview(
    engine: Engine, encoder: Encoder | None, papers: Sequence[PaperRecord], profile: Profile
) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """The papers' and the profile's keyword vectors, or (None, None) without an encoder or
    when it fails or the database refuses its vectors (logged: the preview is ranked without it)."""
    if encoder is None:
        return None, None
    from digestd.embedding.vectors import or_without_encoder, paper_vectors, query_vectors  # here: NumPy

    found = or_without_encoder(
        lambda: (paper_vectors(engine, encoder, papers), query_vectors(engine, encoder, [profile.keyword_query]))
    )
    return found or (None, None)


def explain_no_new_papers(
    engine: Engine, *, start: datetime, end: datetime, dated: bool = False
) -> tuple[str, date] | None:
    """Why a digest of [start, end) has no candidate although papers are stored: (note, the
    latest published date, for `preview_hint`). None when the period has candidates or nothing
    is stored. The same for every subscriber of the period: ask once per period.

    `dated`: the period was asked for by published dates (`preview --since/--until`)."""
    with open_session(engine) as session:
        if not dated and _count_candidates(session, start=start, end=end):
            return None
        found = session.execute(
            select(func.count(), func.min(Paper.published), func.max(Paper.published)).select_from(Paper)
        ).one()
    stored, first, last = int(found[0] or 0), found[1], found[2]
    if not stored:
        return None
    span = f" (published {first} to {last})" if first and last else ""
    period = f"{start.date()} to {(end - timedelta(microseconds=1)).date()}"
    if dated:
        note = f"none of the {stored:,} stored papers{span} was published from {period}"
    else:
        note = (
            f"0 new papers for {period}: none of the {stored:,} stored papers{span} reached digestd in that "
            f"period and was published at most {STALE_AFTER.days} days before it"
        )
    return note, last or end.date()


def preview_hint(email: str, latest: date) -> str:
    """A command that shows `email` a digest of the stored papers up to `latest` (`explain_no_new_papers`)."""
    command = f"digestd preview {email} --since {latest - timedelta(days=6)} --until {latest}"
    return f"to see a digest of stored papers, name their published dates: {command}"


def _count_candidates(session: Session, *, start: datetime, end: datetime) -> int:
    """How many papers `load_candidates` would return."""
    query = select(func.count()).select_from(Paper).where(*_candidate_conditions(start, end))
    return int(session.scalar(query) or 0)


def due_subscribers(session: Session, now: datetime) -> list[Subscriber]:
    query = select(Subscriber).where(Subscriber.status == ACTIVE, col(Subscriber.next_due_at) <= now)
    return list(session.scalars(query.order_by(col(Subscriber.id))))
