"""The sign-up queue: `POST /subscribe` only queues the form; a sender in the web process
records the sign-up and mails the confirmation (or the "already subscribed" note).

So the answer to the form is the same page after the same work (one INSERT) whatever the
address is: new, already subscribed or suppressed, and whether the mail server is quick,
slow or down. The queue is a table (`signup_request`): a mail server that refuses is
retried (`RETRY_SECONDS`, then every 10 minutes) for up to `GIVE_UP_AFTER`, after which
the sign-up is dropped with an ERROR in the log (as is one the checks now refuse); a
stopping web process finishes the mail in flight and keeps the rest for the next start. Several web processes
on one PostgreSQL database share the queue: a sender claims a row for `CLAIM_SECONDS`, so
only one handles it, and a row whose sender died is taken again after that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digestd.errors import DeliveryError, InputError
from digestd.models import SignupRequest
from digestd.subscribers import SubscriberInput
from digestd.web.context import Web
from digestd.web.messages import compose_already_subscribed, compose_confirmation
from digestd.web.signup import SEND_ALREADY_SUBSCRIBED, SEND_CONFIRMATION, SignupOutcome, start_signup

log = logging.getLogger(__name__)

RETRY_SECONDS: tuple[float, ...] = (10, 30, 60, 120, 300, 600)  # then every 10 minutes
GIVE_UP_AFTER = timedelta(hours=24)
CLAIM_SECONDS = 300  # longer than any one attempt (an SMTP timeout is at most a few minutes)
IDLE_SECONDS = 60.0  # look at the queue at least this often (another process may have queued)


def _wall_clock() -> datetime:  # the queue runs on real time, whatever clock the app is given
    return datetime.now(UTC)


def queue_signup(session: Session, checked: SubscriberInput) -> None:
    """Queue a checked sign-up form for the sender; the same one INSERT for every address."""
    now = _wall_clock()
    session.add(SignupRequest(email=checked.email, form=asdict(checked), received_at=now, next_attempt_at=now))


@dataclass(frozen=True)
class Claimed:
    id: int
    form: SubscriberInput
    received_at: datetime
    attempts: int


def claim_next(session: Session, *, now: datetime) -> Claimed | None:
    """Take the oldest due sign-up that no live sender holds, or None."""
    free = or_(col(SignupRequest.claimed_until).is_(None), col(SignupRequest.claimed_until) < now)
    query = select(SignupRequest).where(col(SignupRequest.next_attempt_at) <= now, free)
    for row in session.scalars(query.order_by(col(SignupRequest.id)).limit(5)):
        taken = session.execute(  # atomic: another process may have claimed it meanwhile
            update(SignupRequest)
            .where(col(SignupRequest.id) == row.id, free)
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), attempts=SignupRequest.attempts + 1)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            assert row.id is not None
            return Claimed(row.id, SubscriberInput(**row.form), row.received_at, row.attempts + 1)
    return None


def _forget(session: Session, request_id: int) -> None:
    session.execute(delete(SignupRequest).where(col(SignupRequest.id) == request_id))


def seconds_until_due(session: Session, *, now: datetime) -> float | None:
    """How long until the next queued sign-up is due (None: the queue is empty)."""
    due = session.scalar(select(func.min(SignupRequest.next_attempt_at)))
    return None if due is None else max(0.0, (due - now).total_seconds())


class SignupSender:
    """Works through the queue until `stop` is set; `wake()` after queueing a sign-up."""

    def __init__(self, web: Web, *, retry_seconds: Sequence[float] = RETRY_SECONDS) -> None:
        self.web = web
        self.retry_seconds = tuple(retry_seconds)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                wait = await self.send_due(stop)
            except Exception:  # the database is away, say: log it and try again later
                log.exception("web: the sign-up queue could not be read")
                wait = IDLE_SECONDS
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
            await asyncio.wait(waiters, timeout=min(wait, IDLE_SECONDS), return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        try:
            left = await self.web.run_db(lambda s: s.scalar(select(func.count()).select_from(SignupRequest)))
        except Exception:
            left = None
        if left != 0:
            log.info("web: %s sign-up(s) kept in the queue; they are mailed at the next start", left or "any")

    async def send_due(self, stop: asyncio.Event) -> float:
        """Handle every due sign-up; returns the seconds until the next one is due."""
        while not stop.is_set():
            claimed = await self.web.run_db(lambda s: claim_next(s, now=_wall_clock()), immediate=True)
            if claimed is None:
                break
            await self.handle(claimed)
        due = await self.web.run_db(lambda s: seconds_until_due(s, now=_wall_clock()))
        return IDLE_SECONDS if due is None else due

    async def handle(self, claimed: Claimed) -> None:
        try:
            outcome = await self._record(claimed.form)
            message = self.compose(outcome)
            if message is not None:
                await self.web.send_message(message)
                log.info("sign-up: %s mail sent to subscriber %s", outcome.action, outcome.subscriber_id)
        except InputError as error:  # the form does not pass (stricter checks since it was queued): never will
            log.error("web: a queued sign-up was refused and dropped: %s", error.message)
            await self.web.run_db(lambda s: _forget(s, claimed.id))
            return
        except Exception as error:  # a refusing mail server, or anything else: retry, never drop silently
            if not isinstance(error, DeliveryError):
                log.exception("web: a queued sign-up failed")
            failure = error
            await self.web.run_db(lambda s: self._retry_later(s, claimed, failure), immediate=True)
            return
        await self.web.run_db(lambda s: _forget(s, claimed.id))

    async def _record(self, form: SubscriberInput) -> SignupOutcome:
        defaults, now = self.web.settings.digest, self.web.now()
        try:
            return await self.web.run_db(lambda s: start_signup(s, form, defaults=defaults, now=now), immediate=True)
        except IntegrityError:  # another process's sign-up for the same address won the race: go again
            return await self.web.run_db(lambda s: start_signup(s, form, defaults=defaults, now=now), immediate=True)

    def compose(self, outcome: SignupOutcome) -> EmailMessage | None:
        """The mail `start_signup` asked for (None for a suppressed address)."""
        web, mail, now = self.web, self.web.settings.mail, self.web.now()
        if outcome.action == SEND_CONFIRMATION and outcome.confirm is not None:
            link = web.link("confirm", web.confirms.sign(outcome.confirm))
            return compose_confirmation(web.pages, mail, to=outcome.email, link=link, now=now)
        if outcome.action == SEND_ALREADY_SUBSCRIBED and outcome.subscriber_id is not None:
            manage = web.link("manage", web.links.sign_manage(outcome.subscriber_id, outcome.link_key))
            return compose_already_subscribed(web.pages, mail, to=outcome.email, manage_link=manage, now=now)
        return None

    def _retry_later(self, session: Session, claimed: Claimed, error: Exception) -> None:
        now = _wall_clock()
        reason = str(error)[:500] or type(error).__name__
        if now - claimed.received_at >= GIVE_UP_AFTER:
            log.error(
                "web: gave up mailing a sign-up after %d attempts over %s: %s", claimed.attempts, GIVE_UP_AFTER, reason
            )
            _forget(session, claimed.id)
            return
        delay = self.retry_seconds[min(claimed.attempts, len(self.retry_seconds)) - 1]
        log.warning("web: sign-up mail failed (attempt %d), retrying in %g s: %s", claimed.attempts, delay, reason)
        session.execute(
            update(SignupRequest)
            .where(col(SignupRequest.id) == claimed.id)
            .values(next_attempt_at=now + timedelta(seconds=delay), claimed_until=None, last_error=reason)
        )
