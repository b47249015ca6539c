"""What the manage page shows and changes: the profile, seed papers, ratings, status and
when the next digest is due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, col, select

from digestd.errors import InputError, NotFoundError
from digestd.mail.tokens import TokenSigner
from digestd.models import Paper, Rating, Subscriber
from digestd.records import ACTIVE, PAUSED, PENDING, SEED, UNSUBSCRIBED
from digestd.subscribers import describe, edit_subscriber, load_profile_items, reschedule
from digestd.web.forms import ProfileForm, to_input
from digestd.web.signup import unsubscribe

ACTIONS = ("save", "pause", "resume", "unsubscribe")


@dataclass(frozen=True)
class PaperLine:
    id: str
    title: str | None
    value: int = 0  # a rating: +1 / -1


@dataclass(frozen=True)
class ManageView:
    subscriber_id: int
    email: str
    status: str
    form: ProfileForm
    seeds: list[PaperLine]
    ratings: list[PaperLine]
    next_due: str  # when the next digest comes, in the subscriber's words
    archive_token: str  # for the archive and the feed links


def describe_next_due(subscriber: Subscriber) -> str:
    """When the next digest is due, in the subscriber's time zone (pure)."""
    if subscriber.status == PENDING:
        return "Your first digest is planned once you confirm your subscription."
    if subscriber.status != ACTIVE or subscriber.next_due_at is None:
        return "No digest is planned while your subscription is not active."
    due = (
        subscriber.next_due_at.replace(tzinfo=UTC) if subscriber.next_due_at.tzinfo is None else subscriber.next_due_at
    )
    try:
        local = due.astimezone(ZoneInfo(subscriber.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        local = due.astimezone(UTC)
    return f"Your next digest is due on {local:%A %-d %B %Y at %H:%M} ({local.tzname() or subscriber.timezone})."


def _load_subscriber(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFoundError("there is no subscription for this link", hint="it may have been deleted")
    return subscriber


def _titles(session: Session, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    return {p.id: p.title for p in session.scalars(select(Paper).where(col(Paper.id).in_(ids[:500])))}


def load_manage_view(session: Session, subscriber_id: int, signer: TokenSigner) -> ManageView:
    subscriber = _load_subscriber(session, subscriber_id)
    items = load_profile_items(session, [subscriber_id])[subscriber_id]
    info = describe(subscriber, items)
    seeds = [item.value for item in items if item.kind == SEED]
    ratings = list(
        session.scalars(
            select(Rating).where(col(Rating.subscriber_id) == subscriber_id).order_by(col(Rating.created_at).desc())
        )
    )[:200]
    titles = _titles(session, seeds + [r.paper_id for r in ratings])
    archive_token = signer.sign_archive(subscriber_id, subscriber.link_key)
    form = ProfileForm(
        email=subscriber.email,
        name=subscriber.name,
        keywords=str(info["keywords"]),
        exclude=str(info["exclude"]),
        categories=[str(c) for c in str(info["categories"]).split(", ") if c],
        seeds=" ".join(seeds),
        authors=str(info["authors"]),
        max_papers=str(subscriber.max_papers),
        frequency=subscriber.frequency,
        day=subscriber.send_day,
        time=subscriber.send_time,
        timezone=subscriber.timezone,
        timezone_chosen=True,
        trending=subscriber.trending,
    )
    return ManageView(
        subscriber_id=subscriber_id,
        email=subscriber.email,
        status=subscriber.status,
        form=form,
        seeds=[PaperLine(s, titles.get(s)) for s in seeds],
        ratings=[PaperLine(r.paper_id, titles.get(r.paper_id), r.value) for r in ratings],
        next_due=describe_next_due(subscriber),
        archive_token=archive_token,
    )


def save_profile(session: Session, subscriber_id: int, form: ProfileForm, *, now: datetime) -> None:
    """Apply the manage form; the address itself cannot be changed here."""
    subscriber = _load_subscriber(session, subscriber_id)
    edit_subscriber(session, to_input(form, email=subscriber.email, with_seeds=True), now=now)


def change_status(session: Session, subscriber_id: int, action: str, *, now: datetime) -> None:
    """Pause, resume or unsubscribe; `InputError` when the action does not apply."""
    subscriber = _load_subscriber(session, subscriber_id)
    if action == "unsubscribe":
        unsubscribe(session, subscriber_id, now=now)
    elif action == "pause" and subscriber.status == ACTIVE:
        subscriber.status = PAUSED
    elif action == "resume" and subscriber.status in (PAUSED, UNSUBSCRIBED) and subscriber.confirmed_at is not None:
        subscriber.status = ACTIVE
        subscriber.unsubscribed_at = None
        reschedule(subscriber, now)
    else:
        raise InputError(f"cannot {action} a subscription that is {subscriber.status}")
    session.flush()
