"""Past digests from the ledger: the archive's list, and one digest rebuilt as it was mailed.

A sent ledger row keeps the papers it carried and, since revision 0010, its sections with
the reasons (`Delivery.sections`); a row from before shows its papers as one list. A paper
no longer in the store still shows, by its id. Only rows whose message went to the mail
server (`sent`, or `unknown`: it may have arrived) are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from digestd.delivery.ledger import SENT, UNKNOWN
from digestd.errors import NotFoundError
from digestd.models import Delivery, Subscriber
from digestd.records import Digest, PaperRecord, Pick, Profile, Section
from digestd.store import load_papers_by_id

SHOWN_STATES = (SENT, UNKNOWN)
ARCHIVE_LIMIT = 500  # digests listed; a daily digest for well over a year
FEED_LIMIT = 20  # entries in the Atom feed, as feed readers keep what they saw


def as_utc(moment: datetime) -> datetime:
    """SQLite gives datetimes back without their zone; digestd stores UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class PastDigest:
    """A digest the subscriber was sent, as the archive and the feed list it."""

    period: str
    sent_at: datetime  # UTC
    papers: int


def profile_of(subscriber: Subscriber) -> Profile:
    """What signing the digest's links needs."""
    assert subscriber.id is not None
    return Profile(subscriber.id, subscriber.email, subscriber.name, link_key=subscriber.link_key)


def _shown(subscriber_id: int) -> Any:
    return select(Delivery).where(col(Delivery.subscriber_id) == subscriber_id, col(Delivery.status).in_(SHOWN_STATES))


def load_past_digests(session: Session, subscriber_id: int, *, limit: int = ARCHIVE_LIMIT) -> list[PastDigest]:
    """The subscriber's digests, newest first."""
    query = _shown(subscriber_id).order_by(col(Delivery.period_end).desc()).limit(limit)
    return [
        PastDigest(row.period, as_utc(row.sent_at or row.updated_at), len(row.paper_ids))
        for row in session.scalars(query)
    ]


def _sections_of(row: Delivery) -> list[tuple[str, list[tuple[str, tuple[str, ...]]]]]:
    """(label, [(paper id, reasons)]) per section; a value that is not what digestd writes
    (a row edited by hand) counts as missing, so one bad row shows as a plain list."""
    try:
        return [
            (str(s["label"]), [(str(p["id"]), tuple(str(r) for r in p["reasons"])) for p in s["papers"]])
            for s in row.sections or ()
        ] or _plain_list(row)
    except (KeyError, TypeError):
        return _plain_list(row)


def _plain_list(row: Delivery) -> list[tuple[str, list[tuple[str, tuple[str, ...]]]]]:
    return [("", [(str(paper_id), ()) for paper_id in row.paper_ids or ()])]


def _rebuild(row: Delivery, profile: Profile, papers: dict[str, PaperRecord]) -> Digest:
    sections, score = [], 0.0
    for label, entries in _sections_of(row):
        picks = []
        for paper_id, reasons in entries:
            paper = papers.get(paper_id) or PaperRecord(id=paper_id, title=paper_id, abstract="")
            score -= 1.0  # keeps the mailed order wherever picks are sorted by score
            picks.append(Pick(paper=paper, score=score, reasons=reasons, section=label))
        sections.append(Section(label, tuple(picks)))
    start, end = as_utc(row.period_start), as_utc(row.period_end)
    sent = as_utc(row.sent_at or row.updated_at)
    return Digest(profile, start, end, tuple(s for s in sections if s.picks), generated_at=sent)


def load_digests(
    session: Session, subscriber: Subscriber, periods: list[str] | None = None
) -> list[tuple[str, Digest]]:
    """The subscriber's digests rebuilt with their periods, newest first: those of
    `periods`, else the feed's."""
    assert subscriber.id is not None
    query = _shown(subscriber.id).order_by(col(Delivery.period_end).desc())
    query = query.where(col(Delivery.period).in_(periods)) if periods is not None else query.limit(FEED_LIMIT)
    rows = list(session.scalars(query))
    wanted = {paper_id for row in rows for _, entries in _sections_of(row) for paper_id, _ in entries}
    papers = {paper.id: paper for paper in load_papers_by_id(session, sorted(wanted))}
    profile = profile_of(subscriber)
    return [(row.period, _rebuild(row, profile, papers)) for row in rows]


def load_digest(session: Session, subscriber: Subscriber, period: str) -> Digest:
    """One digest rebuilt; `NotFoundError` if none was sent for `period`."""
    found = load_digests(session, subscriber, [period])
    if not found:
        raise NotFoundError("there is no digest for this link", hint="it may not have been sent yet")
    return found[0][1]
