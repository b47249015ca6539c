"""Plain data passed between the stages.

Sources produce `PaperRecord`s; the store turns subscribers into `Profile`s; the digest
stage turns papers and profiles into `Digest`s made of `Section`s of `Pick`s; render turns
a `Digest` into an email. None of these touch the database or the network. The values of
`Subscriber.status` and `ProfileItem.kind` are named here too, so that what must not load
the database layer (the CLI's options) can use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

# Subscriber.status values
PENDING, ACTIVE, PAUSED, UNSUBSCRIBED, SUPPRESSED = "pending", "active", "paused", "unsubscribed", "suppressed"
SUBSCRIBER_STATUSES = (PENDING, ACTIVE, PAUSED, UNSUBSCRIBED, SUPPRESSED)

# ProfileItem.kind values
KEYWORD, EXCLUDE, CATEGORY, AUTHOR, SEED = "keyword", "exclude", "category", "author", "seed"
PROFILE_KINDS = (KEYWORD, EXCLUDE, CATEGORY, AUTHOR, SEED)


@dataclass(frozen=True, slots=True)
class PaperRecord:
    """One paper as a source saw it, normalised.

    `id` is the canonical identity: an arXiv id without version (`2401.01234`,
    `astro-ph/0601001`), else `doi:<doi>`, else `title:<hash of normalised title>`.
    """

    id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    primary_category: str | None = None
    published: date | None = None
    updated: datetime | None = None
    version: int | None = None
    doi: str | None = None
    abs_url: str | None = None
    pdf_url: str | None = None
    source: str = ""
    popularity: int | None = None
    # Extra text a source offers (e.g. Hugging Face's AI summary and keywords).
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """What ranking reads: title and abstract."""
        return f"{self.title}. {self.abstract}"


@dataclass(frozen=True, slots=True)
class Keyword:
    term: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Profile:
    """A subscriber's interests, as ranking sees them (no ORM objects)."""

    subscriber_id: int
    email: str
    name: str = ""
    keywords: tuple[Keyword, ...] = ()
    excluded: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()  # paper ids
    liked: tuple[str, ...] = ()  # paper ids rated +1
    disliked: tuple[str, ...] = ()  # paper ids rated -1
    max_papers: int = 20
    min_score: float = 0.0
    already_sent: frozenset[str] = frozenset()  # paper ids mailed before
    category_filter: bool = False  # True: only papers in `categories`; False: they get a boost
    link_key: str = ""  # signs the links in their emails (`mail.tokens`); from the subscriber's row
    trending: bool = False  # the period's trending papers rank first (`ranking.trending`)

    @property
    def keyword_query(self) -> str:
        """The keywords as one query for a sentence encoder ("" without keywords): the key of its
        vector in `ranking.build_digests(query_vectors=...)` and in the stored vectors."""
        return ", ".join(keyword.term for keyword in self.keywords)


@dataclass(frozen=True, slots=True)
class Pick:
    """A paper chosen for a digest, with its score and the reasons it was chosen."""

    paper: PaperRecord
    score: float
    reasons: tuple[str, ...] = ()
    section: str = ""


@dataclass(frozen=True, slots=True)
class Section:
    label: str
    picks: tuple[Pick, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    """One subscriber's digest for one period: sections of picks, in rank order."""

    profile: Profile
    period_start: datetime
    period_end: datetime
    sections: tuple[Section, ...] = ()
    candidates: int = 0  # how many papers were in the window
    generated_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())  # e.g. "abstracts shortened to fit"

    @property
    def picks(self) -> list[Pick]:
        """All picks in rank order (by score, highest first)."""
        every = [pick for section in self.sections for pick in section.picks]
        return sorted(every, key=lambda pick: pick.score, reverse=True)

    @property
    def is_empty(self) -> bool:
        return not any(section.picks for section in self.sections)
