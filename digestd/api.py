"""The core operations: what the CLI, the daemon and the web call.

Each takes the settings and an engine (or session) explicitly and `now` as an argument;
the stages they chain (store → digest → render) stay pure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from digestd.config import Settings
from digestd.digest import build_digests, prepare_window
from digestd.errors import InputError
from digestd.models import ACTIVE, Paper, Subscriber
from digestd.records import Digest, PaperRecord, Profile
from digestd.render import Templates, load_templates, render_email
from digestd.schedule import period_key, period_length
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


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    key: str


def next_period(subscriber: Subscriber, now: datetime) -> Period:
    """The period the subscriber's next digest covers: since their previous digest (first
    digest: one period back) up to when it is due."""
    end = subscriber.next_due_at or now
    start = subscriber.last_digest_at or end - period_length(subscriber.frequency)
    return Period(start=start, end=end, key=period_key(end, subscriber.timezone))


def load_candidates(session: Session, period: Period) -> list[PaperRecord]:
    """Papers that reached us during the period and are not old news."""
    oldest = (period.start - STALE_AFTER).date()
    query = select(Paper).where(Paper.first_seen >= period.start, col(Paper.first_seen) < period.end)
    return [to_record(p) for p in session.scalars(query) if p.published is None or p.published >= oldest]


def referenced_papers(session: Session, profiles: Sequence[Profile]) -> list[PaperRecord]:
    """Seed, liked and disliked papers: ranking needs their text even when they are old."""
    ids = {pid for profile in profiles for pid in (*profile.seeds, *profile.liked, *profile.disliked)}
    return load_papers_by_id(session, sorted(ids))


def _day_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    return datetime.combine(since, time(), UTC), datetime.combine(until + timedelta(days=1), time(), UTC)


def preview_digest(
    engine: Engine, email: str, *, now: datetime, since: date | None = None, until: date | None = None
) -> Digest:
    """The digest `email` would get: for papers published in [since, until] if given,
    else for their next period. Nothing is written."""
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
            papers, start, end = load_candidates(session, period), period.start, period.end
        referenced = referenced_papers(session, [profile])
    window = prepare_window(papers, referenced=referenced)
    return build_digests(window, [profile], period_start=start, period_end=end, now=now)[0]


def due_subscribers(session: Session, now: datetime) -> list[Subscriber]:
    query = select(Subscriber).where(Subscriber.status == ACTIVE, col(Subscriber.next_due_at) <= now)
    return list(session.scalars(query.order_by(col(Subscriber.id))))


@dataclass(frozen=True)
class RenderedDigest:
    digest: Digest
    period: Period
    message: EmailMessage


def render_due_digests(
    engine: Engine, settings: Settings, *, now: datetime, emails: Sequence[str] = ()
) -> list[RenderedDigest]:
    """Build and render the digests due now (or of the named subscribers); writes nothing.

    Subscribers are grouped by period so each group shares one vectorised window."""
    templates = load_templates(settings.mail)
    with open_session(engine) as session:
        if emails:
            subscribers = [get_subscriber(session, email) for email in emails]
        else:
            subscribers = due_subscribers(session, now)
        groups: dict[tuple[datetime, datetime], list[tuple[Subscriber, Period]]] = {}
        for subscriber in subscribers:
            period = next_period(subscriber, now)
            groups.setdefault((period.start, period.end), []).append((subscriber, period))
        batches = []
        for (start, end), members in groups.items():
            profiles = load_profiles(session, [s for s, _ in members])
            papers = load_candidates(session, members[0][1])
            batches.append((members, profiles, papers, referenced_papers(session, profiles), start, end))
    return [
        rendered
        for members, profiles, papers, referenced, start, end in batches
        for rendered in _render_batch(templates, settings, members, profiles, papers, referenced, start, end, now)
    ]


def _render_batch(
    templates: Templates,
    settings: Settings,
    members: list[tuple[Subscriber, Period]],
    profiles: list[Profile],
    papers: list[PaperRecord],
    referenced: list[PaperRecord],
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[RenderedDigest]:
    window = prepare_window(papers, referenced=referenced)
    digests = build_digests(window, profiles, period_start=start, period_end=end, now=now)
    return [
        RenderedDigest(digest, period, render_email(templates, digest, mail=settings.mail, period=period.key, now=now))
        for (_, period), digest in zip(members, digests, strict=True)
    ]


def write_messages(rendered: Sequence[RenderedDigest], folder: Path) -> list[Path]:
    """One `.eml` per digest, named after the address and period."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in rendered:
        path = folder / f"{item.digest.profile.email}-{item.period.key}.eml"
        path.write_bytes(item.message.as_bytes())
        paths.append(path)
    return paths
