"""Subscriber management: the core API behind `digestd subscribers ...` (and the web).

Input arrives as `SubscriberInput` (strings, as a user typed them); `check_input` turns
it into validated values or raises `InputError` naming the field. Writes happen in the
caller's session, so a command that fails changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, any_, cast, delete, func
from sqlmodel import Session, col, select

from digestd.config import FREQUENCIES, WEEKDAYS, DigestSettings, check_timezone
from digestd.errors import InputError, NotFoundError
from digestd.identity import normalise_arxiv_id
from digestd.models import Bounce, Delivery, ProfileItem, Rating, SentPaper, SignupRequest, Subscriber, Suppression
from digestd.records import ACTIVE, AUTHOR, CATEGORY, EXCLUDE, KEYWORD, SEED, SUBSCRIBER_STATUSES, Keyword, Profile
from digestd.schedule import next_due_after
from digestd.validation import (
    CATEGORY_MAX,
    EMAIL_MAX,
    MAX_PAPERS,
    NAME_MAX,
    PROFILE_VALUE_MAX,
    TIMEZONE_MAX,
    check_flag,
    check_items,
    check_number,
    check_text,
    shown,
)

_CATEGORY = re.compile(r"^[a-z][a-z\-]*(\.[A-Za-z\-]+)?$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_WEIGHT = re.compile(r":\s*-?[\d.]+$")


def normalise_email(text: str) -> str:
    """The address in the form we store, or `InputError`: lower case, the domain in its
    ASCII (IDNA) form (`ascii@bücher.example` → `ascii@xn--bcher-kva.example`), which every
    relay takes. A non-ASCII local part (`zoë@`) stays: it is sent with SMTPUTF8."""
    # Imported here: `digestd status` and the other readers never need it (0.1 s of start-up).
    from email_validator import EmailNotValidError, validate_email

    address = check_text("email", text, max_length=EMAIL_MAX).strip()
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        raise InputError(f"email {shown(address)} is not a valid address: {error}") from None
    return f"{checked.local_part}@{checked.ascii_domain}".lower()


def check_arxiv_id(text: str) -> str:
    """`2401.01234v2` → `2401.01234`; `arXiv:astro-ph/0601001` → `astro-ph/0601001`; else `InputError`."""
    found = normalise_arxiv_id(check_text("seed", text))
    if found is None:
        raise InputError(
            f"seed {shown(text.strip())} is not an arXiv id", hint="use a form like 2401.01234 or astro-ph/0601001"
        )
    return found


def email_hash(email: str) -> str:
    """What the suppression list keeps instead of the address: a hash of it with its domain
    in Unicode, as addresses were stored before their domains were stored in ASCII, so that
    suppressions recorded then still hold (`ascii@xn--bcher-kva.example` hashes as
    `ascii@bücher.example`)."""
    if "xn--" in email:
        from email_validator import EmailNotValidError, validate_email  # only for such domains

        try:
            email = validate_email(email, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            pass
    return hashlib.sha256(email.encode()).hexdigest()


def parse_keywords(text: str | Sequence[str] | None) -> list[Keyword]:
    """`"graph neural networks:2, diffusion"` → keywords with weights (default 1)."""
    result = []
    for part in check_items("keyword", text or [], max_length=None):
        term, _, weight_text = part.rpartition(":") if _WEIGHT.search(part) else (part, "", "")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise InputError(f"keyword weight in {shown(part)} is not a number") from None
        if not 0 < weight <= 10:
            raise InputError(f"keyword weight in {shown(part)} is not allowed: use a number above 0, at most 10")
        term = check_text("keyword", term.strip().lower(), max_length=PROFILE_VALUE_MAX)
        if not term:
            raise InputError(f"keyword {shown(part)} is not allowed: it has a weight but no words")
        result.append(Keyword(term=term, weight=weight))
    return result


def format_keywords(keywords: Sequence[Keyword]) -> str:
    return ", ".join(k.term if k.weight == 1 else f"{k.term}:{k.weight:g}" for k in keywords)


@dataclass
class SubscriberInput:
    """What a user may set; `None` means "not given" (keep, or take the default). Lists
    are text (`"a, b"`; authors `"A; B"`, as names have commas) or lists of text."""

    email: str
    name: str | None = None
    keywords: str | Sequence[str] | None = None
    exclude: str | Sequence[str] | None = None
    categories: str | Sequence[str] | None = None
    authors: str | Sequence[str] | None = None
    seeds: str | Sequence[str] | None = None
    frequency: str | None = None
    day: str | None = None
    time: str | None = None
    timezone: str | None = None
    weekdays_only: bool | None = None
    category_filter: bool | None = None
    trending: bool | None = None
    max_papers: int | None = None
    min_score: float | None = None
    status: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _check_choice(name: str, value: str | None, allowed: Sequence[str]) -> str | None:
    if value is None:
        return None
    value = check_text(name, value).strip().lower()
    if value not in allowed:
        raise InputError(f"{name} {shown(value)} is not allowed: use one of {', '.join(allowed)}")
    return value


def _check_category(text: str) -> str:
    category = check_text("category", text, max_length=CATEGORY_MAX)
    if not _CATEGORY.match(category):
        raise InputError(f"category {shown(category)} is not an arXiv category", hint="e.g. cs.LG, astro-ph.GA, hep-th")
    return category


def check_input(given: SubscriberInput) -> SubscriberInput:
    """Validate and normalise every field that is set; raise `InputError` on the first bad one.

    Every way in (CLI, web forms, import) comes through here, so a value is refused alike."""
    time_text = given.time
    if time_text is not None:
        match = _TIME.match(check_text("time", time_text).strip())
        if not match:
            raise InputError(f"time {shown(time_text)} is not allowed: use HH:MM, 24-hour, e.g. 08:00")
        time_text = f"{int(match.group(1)):02d}:{match.group(2)}"
    timezone = None if given.timezone is None else check_text("timezone", given.timezone, max_length=TIMEZONE_MAX)
    if timezone is not None:
        check_timezone(timezone.strip(), error=InputError)
    keywords = None if given.keywords is None else check_items("keyword", given.keywords, max_length=None)
    parse_keywords(keywords)

    def items(name: str, value: str | Sequence[str] | None, separator: str = ",") -> list[str] | None:
        return None if value is None else check_items(name, value, max_length=PROFILE_VALUE_MAX, separator=separator)

    categories = items("category", given.categories)
    exclude = items("excluded word", given.exclude)
    seeds = items("seed", given.seeds)
    return replace(
        given,
        email=normalise_email(given.email),
        keywords=keywords,
        name=check_text("name", given.name, max_length=NAME_MAX).strip() if given.name is not None else None,
        exclude=[word.lower() for word in exclude] if exclude is not None else None,
        frequency=_check_choice("frequency", given.frequency, FREQUENCIES),
        day=_check_choice("day", given.day, WEEKDAYS),
        time=time_text,
        timezone=timezone.strip() if timezone is not None else None,
        categories=[_check_category(category) for category in categories] if categories is not None else None,
        authors=items("author", given.authors, separator=";"),
        seeds=list(dict.fromkeys(check_arxiv_id(seed) for seed in seeds)) if seeds is not None else None,
        weekdays_only=None if given.weekdays_only is None else check_flag("weekdays only", given.weekdays_only),
        category_filter=None if given.category_filter is None else check_flag("category filter", given.category_filter),
        trending=None if given.trending is None else check_flag("trending", given.trending),
        max_papers=None
        if given.max_papers is None
        else check_number("max papers", given.max_papers, whole=True, minimum=1, maximum=MAX_PAPERS),
        min_score=None if given.min_score is None else check_number("min score", given.min_score, minimum=0),
        status=_check_choice("status", given.status, SUBSCRIBER_STATUSES),
    )


# The parts of a profile a digest is matched on (excluded words only take papers away).
INTERESTS = (("keywords", KEYWORD), ("categories", CATEGORY), ("authors", AUTHOR), ("seeds", SEED))


def check_interests(checked: SubscriberInput) -> None:
    """A digest needs something to match: a keyword, a category, an author or a seed paper,
    or the trending papers."""
    if not checked.trending and not any(getattr(checked, name) for name, _ in INTERESTS):
        raise InputError(
            "no interests given: give at least one keyword, category, author or seed paper, or ask for trending papers"
        )


# --- reads ------------------------------------------------------------------------------


def get_subscriber(session: Session, email: str) -> Subscriber:
    address = normalise_email(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        raise NotFoundError(f"no subscriber {address}", hint="see `digestd subscribers list`")
    return subscriber


def list_subscribers(session: Session, *, status: str | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.email)
    if status:
        query = query.where(Subscriber.status == status)
    return list(session.scalars(query))


def load_profile_items(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[ProfileItem]]:
    items: dict[int, list[ProfileItem]] = {sid: [] for sid in subscriber_ids}
    for start in range(0, len(subscriber_ids), 500):
        chunk = list(subscriber_ids[start : start + 500])
        query = select(ProfileItem).where(col(ProfileItem.subscriber_id).in_(chunk)).order_by(col(ProfileItem.id))
        for item in session.scalars(query):
            items[item.subscriber_id].append(item)
    return items


def _values(items: Sequence[ProfileItem], kind: str) -> tuple[str, ...]:
    return tuple(item.value for item in items if item.kind == kind)


def make_profile(
    subscriber: Subscriber,
    items: Sequence[ProfileItem],
    *,
    ratings: Sequence[Rating] = (),
    sent: frozenset[str] = frozenset(),
) -> Profile:
    assert subscriber.id is not None
    return Profile(
        subscriber_id=subscriber.id,
        email=subscriber.email,
        name=subscriber.name,
        keywords=tuple(Keyword(i.value, i.weight) for i in items if i.kind == KEYWORD),
        excluded=_values(items, EXCLUDE),
        categories=_values(items, CATEGORY),
        authors=_values(items, AUTHOR),
        seeds=_values(items, SEED),
        liked=tuple(r.paper_id for r in ratings if r.value > 0),
        disliked=tuple(r.paper_id for r in ratings if r.value < 0),
        max_papers=subscriber.max_papers,
        min_score=subscriber.min_score,
        already_sent=sent,
        category_filter=subscriber.category_filter,
        link_key=subscriber.link_key,
        trending=subscriber.trending,
    )


def paper_id_among(dialect: str, paper_ids: Collection[str]) -> ColumnElement[bool]:
    """`sent_paper.paper_id` is one of `paper_ids`, passed as one parameter: an array on
    PostgreSQL, JSON on SQLite (which has no arrays; the two name their JSON functions
    differently). An IN list, one parameter per id, meets limits a long window can reach
    (65,535 in PostgreSQL's protocol; 32,766 variables by SQLite's default), and costs
    twice as much on PostgreSQL: 200 subscribers against a window of 2,000 ids took 87 ms
    against 181, and 23 against 51 ms of CPU; on SQLite the two are even, 738 against 760
    ms (`python -m bench.ledger`, 2026-12-01, loaded VM)."""
    ids = sorted(paper_ids)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return col(SentPaper.paper_id) == any_(cast(ids, ARRAY(String)))
    listed = func.json_each(json.dumps(ids)).table_valued("value")
    return col(SentPaper.paper_id).in_(select(listed.c.value))


def load_profiles(
    session: Session, subscribers: Sequence[Subscriber], *, sent_among: Collection[str] | None = None
) -> list[Profile]:
    """Profiles with ratings and never-twice history, in the order given.

    Never-twice only matters for the papers being ranked: with `sent_among` (the window's
    paper ids), only those of the history are read. A year of weekly 20-paper digests is
    over 1,000 rows per subscriber, of which a window holds a handful at most."""
    ids = [s.id for s in subscribers if s.id is not None]
    items = load_profile_items(session, ids)
    ratings: dict[int, list[Rating]] = {sid: [] for sid in ids}
    sent: dict[int, set[str]] = {sid: set() for sid in ids}
    among = None if sent_among is None else paper_id_among(session.get_bind().dialect.name, sent_among)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for rating in session.scalars(select(Rating).where(col(Rating.subscriber_id).in_(chunk))):
            ratings[rating.subscriber_id].append(rating)
        query = select(SentPaper.subscriber_id, SentPaper.paper_id).where(col(SentPaper.subscriber_id).in_(chunk))
        for subscriber_id, paper_id in session.execute(query if among is None else query.where(among)):
            sent[subscriber_id].add(paper_id)
    return [
        make_profile(s, items[s.id], ratings=ratings[s.id], sent=frozenset(sent[s.id]))
        for s in subscribers
        if s.id is not None
    ]


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    return {status: int(count) for status, count in rows}


# --- writes -----------------------------------------------------------------------------


def is_suppressed(session: Session, email: str) -> bool:
    return session.get(Suppression, email_hash(email)) is not None


def _replace_items(session: Session, subscriber_id: int, kind: str, values: Sequence[str]) -> None:
    session.execute(
        delete(ProfileItem).where(col(ProfileItem.subscriber_id) == subscriber_id, col(ProfileItem.kind) == kind)
    )
    for value in values:
        session.add(ProfileItem(subscriber_id=subscriber_id, kind=kind, value=value))


def _apply_profile(session: Session, subscriber_id: int, checked: SubscriberInput) -> None:
    if checked.keywords is not None:
        session.execute(
            delete(ProfileItem).where(col(ProfileItem.subscriber_id) == subscriber_id, col(ProfileItem.kind) == KEYWORD)
        )
        for keyword in parse_keywords(checked.keywords):
            session.add(
                ProfileItem(subscriber_id=subscriber_id, kind=KEYWORD, value=keyword.term, weight=keyword.weight)
            )
    for kind, values in (
        (EXCLUDE, checked.exclude),
        (CATEGORY, checked.categories),
        (AUTHOR, checked.authors),
        (SEED, checked.seeds),
    ):
        if values is not None:
            _replace_items(session, subscriber_id, kind, list(values))


def reschedule(subscriber: Subscriber, now: datetime) -> None:
    """Set `next_due_at` to the subscriber's first due time after `now`."""
    subscriber.next_due_at = next_due_after(
        now,
        frequency=subscriber.frequency,
        send_day=subscriber.send_day,
        send_time=subscriber.send_time,
        timezone=subscriber.timezone,
        weekdays_only=subscriber.weekdays_only,
    )


def add_subscriber(session: Session, given: SubscriberInput, *, defaults: DigestSettings, now: datetime) -> Subscriber:
    """Create a subscriber (active unless `given.status` says otherwise)."""
    checked = check_input(given)
    check_interests(checked)
    if session.scalar(select(Subscriber.id).where(Subscriber.email == checked.email)) is not None:
        raise InputError(
            f"subscriber {checked.email} already exists", hint="use `digestd subscribers edit` to change it"
        )
    if is_suppressed(session, checked.email):
        raise InputError(f"{checked.email} is on the suppression list and cannot be added again")
    status = checked.status or ACTIVE
    subscriber = Subscriber(
        email=checked.email,
        name=checked.name or "",
        status=status,
        frequency=checked.frequency or defaults.default_frequency,
        send_day=checked.day or defaults.default_day,
        send_time=checked.time or defaults.default_time,
        timezone=checked.timezone or defaults.default_timezone,
        weekdays_only=bool(checked.weekdays_only),
        category_filter=bool(checked.category_filter),
        trending=bool(checked.trending),
        max_papers=checked.max_papers or defaults.max_papers,
        min_score=checked.min_score if checked.min_score is not None else defaults.min_score,
        created_at=now,
        confirmed_at=now if status == ACTIVE else None,
    )
    reschedule(subscriber, now)
    session.add(subscriber)
    session.flush()
    assert subscriber.id is not None
    _apply_profile(session, subscriber.id, checked)
    session.flush()
    return subscriber


def edit_subscriber(session: Session, given: SubscriberInput, *, now: datetime) -> Subscriber:
    """Change the fields that are set in `given`; the schedule is recomputed if it changed."""
    checked = check_input(given)
    subscriber = get_subscriber(session, checked.email)
    assert subscriber.id is not None
    if checked.trending is not None or any(getattr(checked, name) is not None for name, _ in INTERESTS):
        stored = load_profile_items(session, [subscriber.id])[subscriber.id]
        kept: dict[str, Any] = {n: list(_values(stored, k)) for n, k in INTERESTS if getattr(checked, n) is None}
        trending = subscriber.trending if checked.trending is None else checked.trending
        check_interests(replace(checked, trending=trending, **kept))
    changes = {
        "name": checked.name,
        "frequency": checked.frequency,
        "send_day": checked.day,
        "send_time": checked.time,
        "timezone": checked.timezone,
        "weekdays_only": checked.weekdays_only,
        "category_filter": checked.category_filter,
        "trending": checked.trending,
        "max_papers": checked.max_papers,
        "min_score": checked.min_score,
        "status": checked.status,
    }
    for name, value in changes.items():
        if value is not None:
            setattr(subscriber, name, value)
    if checked.status == ACTIVE and subscriber.confirmed_at is None:
        subscriber.confirmed_at = now
    if any(changes[k] is not None for k in ("frequency", "send_day", "send_time", "timezone", "weekdays_only")):
        reschedule(subscriber, now)
    _apply_profile(session, subscriber.id, checked)
    session.flush()
    return subscriber


def remove_subscriber(session: Session, email: str) -> None:
    """Delete a subscriber and their profile, ratings, ledger, history and bounces."""
    subscriber = get_subscriber(session, email)
    for table in (ProfileItem, Rating, SentPaper, Bounce, Delivery):
        session.execute(delete(table).where(col(table.subscriber_id) == subscriber.id))
    session.delete(subscriber)
    session.flush()


def wipe_subscriber(session: Session, email: str, *, now: datetime) -> None:
    """Remove everything about a subscriber, keeping only a hash so they are never re-added by mistake."""
    address = normalise_email(email)
    remove_subscriber(session, address)
    session.execute(delete(SignupRequest).where(col(SignupRequest.email) == address))  # a queued web sign-up
    if not is_suppressed(session, address):
        session.add(Suppression(email_hash=email_hash(address), reason="wiped", created_at=now))
    session.flush()


def describe(subscriber: Subscriber, items: Sequence[ProfileItem]) -> dict[str, object]:
    """A subscriber as plain data: what `show` prints and `export` writes (and `import` reads)."""
    keywords = [Keyword(i.value, i.weight) for i in items if i.kind == KEYWORD]
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "keywords": format_keywords(keywords),
        "exclude": ", ".join(_values(items, EXCLUDE)),
        "categories": ", ".join(_values(items, CATEGORY)),
        "authors": "; ".join(_values(items, AUTHOR)),
        "seeds": ", ".join(_values(items, SEED)),
        "frequency": subscriber.frequency,
        "day": subscriber.send_day,
        "time": subscriber.send_time,
        "timezone": subscriber.timezone,
        "weekdays_only": subscriber.weekdays_only,
        "category_filter": subscriber.category_filter,
        "max_papers": subscriber.max_papers,
        "min_score": subscriber.min_score,
        "trending": subscriber.trending,
    }


def add_seeds(session: Session, email: str, paper_ids: Sequence[str]) -> list[str]:
    """Add seed papers to a subscriber's profile; returns those that were not seeds yet."""
    subscriber = get_subscriber(session, email)
    assert subscriber.id is not None
    known = set(_values(load_profile_items(session, [subscriber.id])[subscriber.id], SEED))
    added = [paper_id for paper_id in dict.fromkeys(paper_ids) if paper_id not in known]
    for paper_id in added:
        session.add(ProfileItem(subscriber_id=subscriber.id, kind=SEED, value=paper_id))
    session.flush()
    return added
