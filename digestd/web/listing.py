"""The public paper list: papers by announcement day, newest day first, kept in memory per day.

A paper is listed under its `published` day (the announcement day for arXiv's listing
feeds); one without that date under the day digestd first saw it. `PaperListing` loads a
day once and keeps it, with its rendered pages, for `FRESH_SECONDS`: the list changes only
when an ingest adds papers, and that happens a few times a day. Filtering by category and
searching work on the kept day, in memory.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from digestd.categories import category_name
from digestd.errors import InputError
from digestd.mail.paper_view import paper_links, shorten_authors, trim_abstract
from digestd.models import Paper
from digestd.records import PaperRecord
from digestd.store import to_record

FRESH_SECONDS = 300.0  # how long a loaded day (and the list of days) is used before it is read again
KEPT_DAYS = 64  # days kept in memory at once (the least recently used goes first)
PER_PAGE = 50
HEAD_CHARS = 320  # the abstract shown before "more"
QUERY_MAX = 200  # characters of a search
_CATEGORY = re.compile(r"^[a-z][a-z\-]{0,20}(\.[A-Za-z\-]{1,20})?$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ListedPaper:
    """A paper as the public page shows it."""

    id: str
    title: str
    abs_url: str
    pdf_url: str
    authors: str
    abstract_head: str  # the first sentences; the whole abstract when it is short
    abstract_rest: str  # what "more" shows; empty when nothing is left
    categories: tuple[tuple[str, str], ...]  # (code, name), one per name
    codes: frozenset[str]  # every category, for the filter
    upvotes: int | None  # Hugging Face upvotes, when a source gave them
    search_text: str  # title, authors and abstract, lower-cased


def list_paper(paper: PaperRecord) -> ListedPaper:
    abstract = _SPACE.sub(" ", paper.abstract).strip()
    head = trim_abstract(abstract, HEAD_CHARS).removesuffix(" …")
    rest = abstract[len(head) :].strip()
    abs_url, pdf_url = paper_links(paper)
    title = _SPACE.sub(" ", paper.title).strip()
    authors = shorten_authors(paper.authors)
    return ListedPaper(
        id=paper.id,
        title=title,
        abs_url=abs_url,
        pdf_url=pdf_url,
        authors=authors,
        abstract_head=head,
        abstract_rest=rest,
        categories=tuple(_named(paper.categories)),
        codes=frozenset(paper.categories),
        upvotes=paper.popularity,
        search_text=" ".join((title, " ".join(paper.authors), abstract)).lower(),
    )


def _named(codes: Sequence[str]) -> list[tuple[str, str]]:
    """(code, name) once per name: cs.LG and stat.ML are both "Machine Learning"."""
    named = {category_name(code): code for code in reversed(codes)}
    return sorted(((code, name) for name, code in named.items()), key=lambda pair: codes.index(pair[0]))


@dataclass(frozen=True)
class Day:
    """One announcement day's papers, most upvoted first, then by id."""

    day: date
    papers: tuple[ListedPaper, ...]
    categories: tuple[tuple[str, str, int], ...]  # (code, name, papers), most papers first

    def select(self, *, category: str = "", query: str = "") -> list[ListedPaper]:
        words = query.lower().split()
        return [
            paper
            for paper in self.papers
            if (not category or category in paper.codes) and all(word in paper.search_text for word in words)
        ]


def make_day(day: date, records: Sequence[PaperRecord]) -> Day:
    papers = sorted((list_paper(r) for r in records), key=lambda p: (-(p.upvotes or 0), p.id))
    counts: dict[str, int] = {}
    for paper in papers:
        for code in paper.codes:
            counts[code] = counts.get(code, 0) + 1
    categories = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Day(day, tuple(papers), tuple((code, category_name(code), n) for code, n in categories))


def check_filters(category: str, query: str) -> tuple[str, str]:
    """The category and search as given in the address, checked: `InputError` if unusable."""
    category = category.strip()
    if category and not _CATEGORY.match(category):
        raise InputError(f"{category[:40]!r} is not an arXiv category", hint="pick one from the list, e.g. cs.LG")
    query = _SPACE.sub(" ", query).strip()
    if len(query) > QUERY_MAX:
        raise InputError(f"the search is too long ({len(query)} characters)", hint=f"use at most {QUERY_MAX}")
    return category, query


def parse_day(text: str) -> date:
    """`YYYY-MM-DD` from the address; `InputError` otherwise."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise InputError(f"{text[:20]!r} is not a date", hint="days are written YYYY-MM-DD, e.g. 2026-11-30")


# --- the database -------------------------------------------------------------------------


def load_days(session: Session) -> list[date]:
    """Every day with papers, newest first."""
    published = select(col(Paper.published)).distinct()
    days: set[date] = {day for day in session.scalars(published) if day is not None}
    unpublished = select(Paper.first_seen).where(col(Paper.published).is_(None))
    days.update(seen.date() for seen in session.scalars(unpublished))
    return sorted(days, reverse=True)


def load_day(session: Session, day: date) -> list[PaperRecord]:
    start = datetime.combine(day, day_time(), tzinfo=UTC)
    seen_that_day = and_(
        col(Paper.published).is_(None), col(Paper.first_seen) >= start, col(Paper.first_seen) < start + timedelta(1)
    )
    query = select(Paper).where(or_(col(Paper.published) == day, seen_that_day))
    return [to_record(paper) for paper in session.scalars(query)]


# --- the cache ------------------------------------------------------------------------------


@dataclass
class Kept:
    value: object
    until: float
    pages: dict[tuple[object, ...], str] = field(default_factory=dict)  # rendered HTML by filter


@dataclass
class PaperListing:
    """The days and their papers, loaded through `run_db` and kept for `fresh_seconds`.
    Rendered pages are kept with their day, so they go when it is read again."""

    fresh_seconds: float = FRESH_SECONDS
    clock: Callable[[], float] = time.monotonic
    _kept: OrderedDict[object, Kept] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def kept(self, key: object) -> Kept | None:
        with self._lock:
            entry = self._kept.get(key)
            if entry is None or entry.until < self.clock():
                return None
            self._kept.move_to_end(key)
            return entry

    def keep(self, key: object, value: object) -> Kept:
        entry = Kept(value, self.clock() + self.fresh_seconds)
        with self._lock:
            self._kept[key] = entry
            self._kept.move_to_end(key)
            while len(self._kept) > KEPT_DAYS + 1:  # + the list of days
                self._kept.popitem(last=False)
        return entry
