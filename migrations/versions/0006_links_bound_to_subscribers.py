"""links bound to their subscriber: ids never reused (SQLite AUTOINCREMENT), a link key per
subscriber; the web's sign-up queue

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00
"""

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Unsubscribe links mailed before this revision keep working this long (manage and rate
# links do not): see README, "Subscribing on the web".
LEGACY_UNSUBSCRIBE_DAYS = 30


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("subscriber") as batch_op:
        batch_op.add_column(sa.Column("link_key", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column("legacy_links_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    subscriber = sa.table(
        "subscriber",
        sa.column("id", sa.Integer),
        sa.column("link_key", sa.String),
        sa.column("legacy_links_until", sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    until = datetime.now(UTC) + timedelta(days=LEGACY_UNSUBSCRIBE_DAYS)
    ids = list(bind.execute(sa.select(subscriber.c.id)).scalars())
    update = (
        sa.update(subscriber)
        .where(subscriber.c.id == sa.bindparam("sid"))
        .values(link_key=sa.bindparam("key"), legacy_links_until=until)
    )
    for start in range(0, len(ids), 10_000):
        rows = [{"sid": sid, "key": secrets.token_urlsafe(16)} for sid in ids[start : start + 10_000]]
        bind.execute(update, rows)
    # On SQLite the table is rebuilt, now with AUTOINCREMENT (env.py turns foreign keys off
    # meanwhile, so the rows that reference subscribers stay).
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table(
        "subscriber", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.alter_column("link_key", existing_type=sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False)

    op.create_table(
        "signup_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("signup_request") as batch_op:
        batch_op.create_index("ix_signup_request_due", ["next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_signup_request_email"), ["email"], unique=False)


def downgrade() -> None:
    op.drop_table("signup_request")
    with op.batch_alter_table("subscriber", recreate="auto") as batch_op:
        batch_op.drop_column("legacy_links_until")
        batch_op.drop_column("link_key")
