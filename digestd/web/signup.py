"""Web sign-up and the subscriber's own actions: the core API behind `digestd.web`.

Double opt-in: `start_signup` creates (or refreshes) a `pending` subscriber with a
confirmation nonce; `confirm_signup` activates it when the link carrying that nonce comes
back within 72 hours; `purge_unconfirmed` deletes pending subscribers after 30 days (the
daemon calls it). Writes happen in the caller's session. Membership is never revealed by
an exception: `start_signup` says what mail to send, and the caller shows one page.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from digestd.config import DigestSettings
from digestd.errors import NotFoundError
from digestd.mail.tokens import UNSUBSCRIBE, Token, TokenError, TokenSigner
from digestd.models import Bounce, Delivery, ProfileItem, Rating, SentPaper, Subscriber
from digestd.records import ACTIVE, PAUSED, PENDING, UNSUBSCRIBED
from digestd.store import insert_on_conflict
from digestd.subscribers import SubscriberInput, add_subscriber, check_input, edit_subscriber, is_suppressed, reschedule
from digestd.web.confirmation import ConfirmToken, check_fresh, new_nonce

PURGE_UNCONFIRMED_AFTER = timedelta(days=30)

# What `start_signup` asks the caller to mail.
SEND_CONFIRMATION, SEND_ALREADY_SUBSCRIBED, SEND_NOTHING = "confirmation", "already-subscribed", "nothing"


@dataclass(frozen=True)
class SignupOutcome:
    action: str  # SEND_CONFIRMATION | SEND_ALREADY_SUBSCRIBED | SEND_NOTHING
    email: str
    subscriber_id: int | None = None
    confirm: ConfirmToken | None = None  # for SEND_CONFIRMATION
    link_key: str = ""  # for SEND_ALREADY_SUBSCRIBED: signs the manage link


def _find(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(col(Subscriber.email) == email))


def _ask_confirmation(subscriber: Subscriber, now: datetime) -> SignupOutcome:
    assert subscriber.id is not None
    subscriber.confirm_nonce = new_nonce()
    subscriber.confirm_sent_at = now
    token = ConfirmToken(subscriber_id=subscriber.id, issued_at=now, nonce=subscriber.confirm_nonce)
    return SignupOutcome(SEND_CONFIRMATION, subscriber.email, subscriber.id, token)


def start_signup(session: Session, given: SubscriberInput, *, defaults: DigestSettings, now: datetime) -> SignupOutcome:
    """Record a sign-up from the web form; raises `InputError` only for bad input.

    New or unsubscribed (or still pending) addresses become `pending` with a new
    confirmation nonce; active and paused ones are left alone and get an "already
    subscribed" email; suppressed ones get nothing."""
    checked = replace(check_input(given), status=PENDING)
    if is_suppressed(session, checked.email):
        return SignupOutcome(SEND_NOTHING, checked.email)
    subscriber = _find(session, checked.email)
    if subscriber is None:
        subscriber = add_subscriber(session, checked, defaults=defaults, now=now)
    elif subscriber.status in (ACTIVE, PAUSED):
        return SignupOutcome(SEND_ALREADY_SUBSCRIBED, subscriber.email, subscriber.id, link_key=subscriber.link_key)
    elif subscriber.status in (PENDING, UNSUBSCRIBED):
        subscriber = edit_subscriber(session, checked, now=now)
    else:
        return SignupOutcome(SEND_NOTHING, checked.email)
    outcome = _ask_confirmation(subscriber, now)
    session.flush()
    return outcome


def check_link(session: Session, signer: TokenSigner, text: str, *, kind: str, now: datetime) -> Token:
    """The token of a link from a digest, verified with its subscriber's link key;
    `NotFoundError` when that subscriber no longer exists, `TokenError` when it was not
    made for them. Links mailed before link keys existed pass only to unsubscribe, and only
    until the subscriber's `legacy_links_until`."""
    subscriber = session.get(Subscriber, signer.claimed_subscriber(text, kind=kind))
    if subscriber is None:
        raise NotFoundError("there is no subscription for this link", hint="it may have been deleted")
    until = subscriber.legacy_links_until
    legacy = kind == UNSUBSCRIBE and until is not None and now < until
    return signer.verify(text, link_key=subscriber.link_key, kind=kind, accept_legacy=legacy)


def check_confirmation(session: Session, token: ConfirmToken, *, now: datetime) -> Subscriber:
    """The pending subscriber the link confirms; `TokenError` if expired, used or replaced."""
    subscriber = session.get(Subscriber, token.subscriber_id)
    if subscriber is None:
        raise NotFoundError("this confirmation link is for a sign-up that no longer exists", hint="subscribe again")
    check_fresh(token, now=now)
    nonce = subscriber.confirm_nonce
    if subscriber.status != PENDING or nonce is None or not hmac.compare_digest(nonce, token.nonce):
        raise TokenError(
            "this confirmation link has already been used, or a newer one was sent",
            hint="use the newest link, or the manage link in your digest",
        )
    return subscriber


def confirm_signup(session: Session, token: ConfirmToken, *, now: datetime) -> Subscriber:
    """Activate the subscriber; the link cannot be used again."""
    subscriber = check_confirmation(session, token, now=now)
    subscriber.status = ACTIVE
    subscriber.confirmed_at = now
    subscriber.confirm_nonce = None
    subscriber.unsubscribed_at = None
    reschedule(subscriber, now)
    session.flush()
    return subscriber


def purge_unconfirmed(session: Session, now: datetime, *, older_than: timedelta = PURGE_UNCONFIRMED_AFTER) -> int:
    """Delete pending subscribers whose last confirmation mail is older than 30 days; returns how many."""
    since = func.coalesce(col(Subscriber.confirm_sent_at), col(Subscriber.created_at))
    query = select(Subscriber.id).where(col(Subscriber.status) == PENDING, since < now - older_than)
    ids = [sid for sid in session.scalars(query) if sid is not None]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for table in (ProfileItem, Rating, SentPaper, Bounce, Delivery):
            session.execute(delete(table).where(col(table.subscriber_id).in_(chunk)))
        session.execute(delete(Subscriber).where(col(Subscriber.id).in_(chunk)))
    session.flush()
    return len(ids)


def unsubscribe(session: Session, subscriber_id: int, *, now: datetime) -> bool:
    """Stop all mail to the subscriber (idempotent); False if there is no such subscriber."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return False
    if subscriber.status in (PENDING, ACTIVE, PAUSED):
        subscriber.status = UNSUBSCRIBED
        subscriber.unsubscribed_at = now
        subscriber.confirm_nonce = None
        session.flush()
    return True


def save_rating(session: Session, subscriber_id: int, paper_id: str, value: int, *, now: datetime) -> None:
    """Record +1/-1 for a paper; a later rating of the same paper replaces the earlier one."""
    if value not in (1, -1):
        raise ValueError("a rating is +1 or -1")
    row = {"subscriber_id": subscriber_id, "paper_id": paper_id, "value": value, "created_at": now}
    statement = insert_on_conflict(session.get_bind().dialect.name, Rating).values(**row)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["subscriber_id", "paper_id"], set_={"value": value, "created_at": now}
        )
    )
    session.flush()
