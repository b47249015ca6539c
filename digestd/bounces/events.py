"""The bounce policy: an event about a subscriber → their new state, and a `Bounce` row.

- a hard bounce (5.x.x) suppresses the address at once;
- soft bounces (4.x.x) suppress it once `bounces.soft_limit` of them came within
  `bounces.soft_days` (counted since the last `unsuppress`);
- a complaint (ARF) unsubscribes and suppresses at once;
- a mailed unsubscribe unsubscribes.

A message names its digest by a signed return token; one whose token does not verify
(forged, damaged, for a subscriber who is gone) changes nothing and is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func
from sqlmodel import Session, col, select

from digestd.config import BounceSettings, MailSettings, Settings
from digestd.errors import ConfigError, InputError, NotFoundError
from digestd.mail.message import bounce_address, unsubscribe_mailto
from digestd.mail.returned import (
    COMPLAINT,
    HARD,
    IGNORED,
    KINDS,
    SOFT,
    UNSUBSCRIBE_REQUEST,
    ReturnAddresses,
    Returned,
    read_returned,
)
from digestd.mail.tokens import BOUNCE, UNSUBSCRIBE, TokenError, TokenSigner, check_secret_key, read_return_token
from digestd.models import Bounce, Delivery, Subscriber, Suppression
from digestd.records import ACTIVE, PAUSED, PENDING, SUPPRESSED, UNSUBSCRIBED
from digestd.store import insert_on_conflict, open_session
from digestd.subscribers import email_hash, get_subscriber, normalise_email, reschedule

log = logging.getLogger(__name__)
UNSUPPRESSED = "unsuppressed"  # a `Bounce` row's kind when the operator lifted a suppression


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message or report: its kind, what digestd did, to whom."""

    kind: str
    action: str
    email: str = ""

    def describe(self) -> str:
        return f"{self.kind}: {self.action}" + (f" ({self.email})" if self.email else "")


def _id(subscriber: Subscriber) -> int:
    assert subscriber.id is not None, "a stored subscriber"
    return subscriber.id


def return_addresses(mail: MailSettings) -> ReturnAddresses:
    address = bounce_address(mail)
    if not address:
        raise ConfigError(
            "mail.bounce_address is not set: digestd cannot tell which digest a bounce is about",
            hint='set e.g. bounce_address = "bounces@digest.example.org" in [mail] (README, "Bounces")',
        )
    return ReturnAddresses(bounce=address, unsubscribe=unsubscribe_mailto(mail))


def handle_message(
    engine: Engine, settings: Settings, raw: bytes, *, source: str, now: datetime, recipient: str = ""
) -> Outcome:
    """Read one returned message (its raw bytes) and act on it. Database errors propagate
    (the caller keeps the message for later); anything about the message itself is an outcome."""
    returned = read_returned(raw, return_addresses(settings.mail), recipient=recipient)
    if returned.kind == IGNORED:
        log.info("%s message ignored: %s", source, returned.reason)
        return Outcome(IGNORED, returned.reason)
    signer = TokenSigner(check_secret_key(settings.secret_key))
    with open_session(engine, immediate=True) as session:
        found = _verified(session, signer, returned)
        if found is None:
            log.warning("%s message ignored: %s with a return token digestd did not sign", source, returned.reason)
            return Outcome(IGNORED, "its return token is forged, damaged or for a subscriber who is gone")
        delivery_id, subscriber = found
        if returned.message_id and _seen(session, subscriber, returned.message_id):
            log.info("%s message ignored: %s already recorded", source, returned.reason)
            return Outcome(IGNORED, f"already recorded (the same {returned.kind} report read again)", subscriber.email)
        event = _event(delivery_id, subscriber, returned, source=source, now=now)
        return _record(session, settings.bounces, subscriber, event, now=now)


def _verified(session: Session, signer: TokenSigner, returned: Returned) -> tuple[int, Subscriber] | None:
    read = read_return_token(returned.token)
    if read is None:
        return None
    row = session.execute(
        select(Delivery.id, Subscriber)
        .join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id)
        .where(col(Delivery.id) == read[0])
    ).first()
    if row is None:
        return None
    kind = UNSUBSCRIBE if returned.token_kind == UNSUBSCRIBE else BOUNCE
    try:
        signer.verify_return(returned.token, kind=kind, link_key=row[1].link_key)
    except TokenError:
        return None
    return row[0], row[1]


def handle_report(
    engine: Engine,
    settings: Settings,
    *,
    email: str,
    token: str,
    kind: str,
    status: str,
    diagnostic: str,
    now: datetime,
) -> Outcome:
    """A report from a webhook: by address or by return token; the same policy."""
    if kind not in KINDS:
        raise InputError(f"kind = {kind!r} is not allowed: use one of {', '.join(KINDS)}")
    signer = TokenSigner(check_secret_key(settings.secret_key))
    with open_session(engine, immediate=True) as session:
        delivery_id: int | None = None
        if token:
            found = _verified(session, signer, Returned(kind, token=token, token_kind=BOUNCE)) or _verified(
                session, signer, Returned(kind, token=token, token_kind=UNSUBSCRIBE)
            )
            if found is None:
                log.warning("webhook report ignored: a return token digestd did not sign")
                raise NotFoundError("the token is not one digestd signed")
            delivery_id, subscriber = found
        else:
            subscriber = get_subscriber(session, email)
        event = _event(
            delivery_id, subscriber, Returned(kind, status=status, diagnostic=diagnostic), source="webhook", now=now
        )
        return _record(session, settings.bounces, subscriber, event, now=now)


def _event(
    delivery_id: int | None, subscriber: Subscriber, returned: Returned, *, source: str, now: datetime
) -> Bounce:
    return Bounce(
        delivery_id=delivery_id,
        subscriber_id=_id(subscriber),
        kind=returned.kind,
        status=returned.status,
        diagnostic=returned.diagnostic,
        source=source,
        message_id=returned.message_id,
        received_at=now,
    )


def _seen(session: Session, subscriber: Subscriber, message_id: str) -> bool:
    query = select(Bounce.id).where(Bounce.subscriber_id == subscriber.id, Bounce.message_id == message_id)
    return session.scalar(query.limit(1)) is not None


def _record(
    session: Session, policy: BounceSettings, subscriber: Subscriber, event: Bounce, *, now: datetime
) -> Outcome:
    event.action = _act(session, policy, subscriber, event.kind, now=now)
    session.add(event)
    session.flush()
    log.info("%s %s for subscriber %s: %s", event.source, event.kind, subscriber.id, event.action)
    return Outcome(event.kind, event.action, subscriber.email)


def _act(session: Session, policy: BounceSettings, subscriber: Subscriber, kind: str, *, now: datetime) -> str:
    if kind == UNSUBSCRIBE_REQUEST:
        if subscriber.status not in (PENDING, ACTIVE, PAUSED):
            return f"already {subscriber.status}"
        subscriber.status, subscriber.unsubscribed_at = UNSUBSCRIBED, now
        return "unsubscribed"
    if kind == COMPLAINT:
        subscriber.unsubscribed_at = subscriber.unsubscribed_at or now
        return _suppress(session, subscriber, "complaint", now=now, action="unsubscribed and suppressed")
    if kind == HARD:
        return _suppress(session, subscriber, "hard bounce", now=now)
    assert kind == SOFT
    count = _recent_soft_bounces(session, subscriber, policy, now=now) + 1
    if count >= policy.soft_limit:
        return _suppress(session, subscriber, f"{count} soft bounces in {policy.soft_days:g} days", now=now)
    return f"counted: soft bounce {count} of {policy.soft_limit} in {policy.soft_days:g} days"


def _recent_soft_bounces(session: Session, subscriber: Subscriber, policy: BounceSettings, *, now: datetime) -> int:
    lifted = session.scalar(
        select(func.max(Bounce.received_at)).where(Bounce.subscriber_id == subscriber.id, Bounce.kind == UNSUPPRESSED)
    )
    since = max(now - timedelta(days=policy.soft_days), lifted) if lifted else now - timedelta(days=policy.soft_days)
    count = session.scalar(
        select(func.count())
        .select_from(Bounce)
        .where(Bounce.subscriber_id == subscriber.id, Bounce.kind == SOFT, col(Bounce.received_at) > since)
    )
    return int(count or 0)


def _suppress(
    session: Session, subscriber: Subscriber, reason: str, *, now: datetime, action: str = "suppressed"
) -> str:
    if subscriber.status == SUPPRESSED:
        return "already suppressed"
    row = {"email_hash": email_hash(subscriber.email), "reason": reason[:50], "created_at": now}
    session.execute(insert_on_conflict(session.get_bind().dialect.name, Suppression).on_conflict_do_nothing(), [row])
    subscriber.status = SUPPRESSED
    return f"{action} ({reason})"


def unsuppress(session: Session, email: str, *, now: datetime) -> str:
    """Lift a suppression on purpose: the address leaves the suppression list and a
    suppressed subscriber is active again (their schedule restarts from `now`)."""
    address = normalise_email(email)
    removed = session.execute(delete(Suppression).where(col(Suppression.email_hash) == email_hash(address)))
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is not None and subscriber.status == SUPPRESSED:
        subscriber.status = ACTIVE
        reschedule(subscriber, now)
    elif not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"{address} is not suppressed")
    if subscriber is not None:
        session.add(
            Bounce(subscriber_id=_id(subscriber), kind=UNSUPPRESSED, action="lifted by the operator", received_at=now)
        )
    session.flush()
    return "active again" if subscriber is not None and subscriber.status == ACTIVE else "off the suppression list"
