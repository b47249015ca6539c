"""Subscribers' addresses stored with the domain in its ASCII (IDNA) form, as digestd now
stores new ones (`ascii@bücher.example` → `ascii@xn--bcher-kva.example`), so that the CLI
finds them by address and a new sign-up meets the same row. Punycode is not SQL: the rows
are read and rewritten here. A row whose ASCII form another row already holds, or that is
not an address, is left as it is (sending fails that row alone, with its reason).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Imported here: Alembic imports every revision to find the head, and `digestd status` does that.
    from email_validator import EmailNotValidError, validate_email

    connection = op.get_bind()
    subscriber = sa.table("subscriber", sa.column("id", sa.Integer), sa.column("email", sa.String))
    rows = connection.execute(sa.select(subscriber.c.id, subscriber.c.email)).all()
    taken = {email for _, email in rows}
    for row_id, email in rows:
        local, _, domain = email.rpartition("@")
        if domain.isascii():
            continue
        try:
            ascii_domain = validate_email(email, check_deliverability=False).ascii_domain
        except EmailNotValidError:
            continue
        stored = f"{local}@{ascii_domain}".lower()
        if stored not in taken:
            connection.execute(subscriber.update().where(subscriber.c.id == row_id).values(email=stored))
            taken.add(stored)


def downgrade() -> None:
    """Nothing to undo: the ASCII form is the same address."""
