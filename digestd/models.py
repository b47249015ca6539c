"""The database tables (SQLModel). Migrations in `migrations/` must agree with these:
`alembic check` (run by the tests) fails when they drift apart. Column sizes are the
limits in `validation`, which every entry point checks before anything is written."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from digestd.records import ACTIVE
from digestd.validation import (
    CATEGORY_MAX,
    DOI_MAX,
    EMAIL_MAX,
    NAME_MAX,
    PAPER_ID_MAX,
    PROFILE_VALUE_MAX,
    SOURCE_NAME_MAX,
    TIMEZONE_MAX,
)


def new_link_key() -> str:
    """A subscriber's random link key: every link mailed to them is signed with it (128 bits)."""
    return secrets.token_urlsafe(16)


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Paper(SQLModel, table=True):
    """A paper, one row per canonical id however many sources carried it."""

    __table_args__ = (Index("ix_paper_published", "published"), Index("ix_paper_first_seen", "first_seen"))

    id: str = Field(primary_key=True, max_length=PAPER_ID_MAX)
    version: int | None = None
    title: str
    abstract: str
    authors: list[str] = _json_list()
    categories: list[str] = _json_list()
    primary_category: str | None = Field(default=None, max_length=CATEGORY_MAX)
    published: date | None = None
    updated: datetime | None = None
    doi: str | None = Field(default=None, max_length=DOI_MAX)
    abs_url: str | None = None
    pdf_url: str | None = None
    sources: list[str] = _json_list()
    popularity: int | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] = _json_list()
    first_seen: datetime
    last_seen: datetime


class Subscriber(SQLModel, table=True):
    # AUTOINCREMENT: SQLite never gives a new subscriber the id of a deleted one (PostgreSQL's
    # sequence never does either), so an old link can never name someone else.
    __table_args__ = (Index("ix_subscriber_due", "status", "next_due_at"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=EMAIL_MAX, unique=True)
    name: str = Field(default="", max_length=NAME_MAX)
    status: str = Field(default=ACTIVE, max_length=20)
    frequency: str = Field(default="weekly", max_length=10)
    send_day: str = Field(default="mon", max_length=3)
    send_time: str = Field(default="08:00", max_length=5)
    timezone: str = Field(default="UTC", max_length=TIMEZONE_MAX)
    weekdays_only: bool = False
    category_filter: bool = False  # categories: only these (True) or a boost (False)
    trending: bool = False  # also (or only) the period's trending papers
    max_papers: int = 20
    min_score: float = 0.0
    format: str = Field(default="both", max_length=10)  # both | text
    created_at: datetime
    confirmed_at: datetime | None = None
    next_due_at: datetime | None = None
    last_digest_at: datetime | None = None
    # Web sign-up: the nonce in the one confirmation link that is valid (cleared once used),
    # when that link was mailed, and when the subscriber left.
    confirm_nonce: str | None = Field(default=None, max_length=64)
    confirm_sent_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    # Signs every link mailed to this subscriber (`digestd.mail.tokens`): links die with the row.
    link_key: str = Field(default_factory=new_link_key, max_length=32)
    # Unsubscribe links mailed before link keys existed (digestd 0006) work until then.
    legacy_links_until: datetime | None = None


class ProfileItem(SQLModel, table=True):
    """One part of a profile: a keyword (with weight), an excluded word, a category,
    a followed author or a seed paper."""

    __tablename__ = "profile_item"
    __table_args__ = (UniqueConstraint("subscriber_id", "kind", "value", name="uq_profile_item"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=10)
    value: str = Field(max_length=PROFILE_VALUE_MAX)
    weight: float = 1.0


class Rating(SQLModel, table=True):
    """+1 or -1 for a paper from a subscriber; the latest one counts."""

    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, ondelete="CASCADE")
    paper_id: str = Field(primary_key=True, max_length=PAPER_ID_MAX)
    value: int
    created_at: datetime


class Delivery(SQLModel, table=True):
    """The ledger: one row per (subscriber, period). See DESIGN.md for the states."""

    __table_args__ = (
        UniqueConstraint("subscriber_id", "period", name="uq_delivery_period"),
        Index("ix_delivery_status", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    period: str = Field(max_length=40)  # e.g. "2026-11-30" (the period's due date, local)
    period_start: datetime
    period_end: datetime
    status: str = Field(default="pending", max_length=20)
    attempts: int = 0
    last_error: str | None = None
    message_id: str | None = Field(default=None, max_length=300)
    paper_ids: list[str] = _json_list()
    # The digest as mailed, to show it on the web: `mail.render.digest_sections` (None
    # before it was sent, and for digests sent before revision 0010).
    sections: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None = None
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = None
    sent_at: datetime | None = None


class SentPaper(SQLModel, table=True):
    """A paper already mailed to a subscriber, so it is never mailed to them again."""

    __tablename__ = "sent_paper"
    # Old rows are deleted by time (`ledger.forget_sent_papers`). Not BRIN: the space they
    # leave is refilled by new rows, which would widen every block range's summary.
    __table_args__ = (Index("ix_sent_paper_sent_at", "sent_at"),)

    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, ondelete="CASCADE")
    paper_id: str = Field(primary_key=True, max_length=PAPER_ID_MAX)
    delivery_id: int | None = None
    sent_at: datetime


class Suppression(SQLModel, table=True):
    """An address never to mail again, kept only as a hash (after wipe, hard bounce...)."""

    email_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=50)
    created_at: datetime


class SignupRequest(SQLModel, table=True):
    """A sign-up from the web form, queued: the web's sender records it and mails the
    confirmation, so the form's answer neither waits for the mail nor depends on the address."""

    __tablename__ = "signup_request"
    __table_args__ = (Index("ix_signup_request_due", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, index=True)  # so `wipe` can delete a queued one
    form: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime
    next_attempt_at: datetime
    claimed_until: datetime | None = None  # a sender is on it until then
    attempts: int = 0
    last_error: str | None = None


class SourceState(SQLModel, table=True):
    """Per source: HTTP validators, cursor, and what happened on the last runs."""

    __tablename__ = "source_state"

    name: str = Field(primary_key=True, max_length=SOURCE_NAME_MAX)
    kind: str = Field(default="", max_length=20)
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_new: int = 0
    last_updated: int = 0
    last_seen: int = 0
    total_new: int = 0
    consecutive_failures: int = 0
    next_attempt_at: datetime | None = None
    last_note: str | None = None  # what the last run noticed, e.g. "feed empty (weekend or holiday)"


class Worker(SQLModel, table=True):
    """A live delivery worker (scale-out), with a heartbeat and its throughput."""

    id: str = Field(primary_key=True, max_length=200)
    host: str = Field(default="", max_length=200)
    pid: int = 0
    started_at: datetime
    heartbeat_at: datetime
    sent: int = 0


class Bounce(SQLModel, table=True):
    """What came back about a digest: a bounce (hard or soft), a complaint or a mailed
    unsubscribe (`digestd.bounces`). Erased with the subscriber."""

    __table_args__ = (Index("ix_bounce_received_at", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int | None = None  # the ledger row its VERP token named; None from a webhook by address
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=20)  # hard | soft | complaint | unsubscribe
    status: str = Field(default="", max_length=20)  # enhanced status code, e.g. 5.1.1
    diagnostic: str = Field(default="", max_length=500)
    source: str = Field(default="", max_length=20)  # pipe | maildir | imap | webhook
    action: str = Field(default="", max_length=50)  # what digestd did: suppressed, unsubscribed, counted
    message_id: str = Field(default="", max_length=300)  # of the returned message: each is acted on once
    received_at: datetime


TEXT_VECTOR_KEY_MAX = PAPER_ID_MAX + 10  # "paper:<id>", "query:<sha-256 in hex>"
ENCODER_IDENTITY_MAX = 1000  # `[encoder] model` (at most ENCODER_MODEL_MAX) and " max_tokens=N"


class TextVector(SQLModel, table=True):
    """A text's vector from the sentence encoder (`digestd.embedding`), per encoder: changing
    the model (or its token limit) never mixes vectors of two spaces."""

    __tablename__ = "text_vector"

    key: str = Field(primary_key=True, max_length=TEXT_VECTOR_KEY_MAX)  # paper:<id> or query:<sha-256 of the text>
    encoder: str = Field(primary_key=True, max_length=ENCODER_IDENTITY_MAX)  # `Encoder.identity`
    text_hash: str = Field(max_length=64)  # sha-256 of the text embedded: a paper whose text changed is embedded again
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # unit-length float32, little-endian
