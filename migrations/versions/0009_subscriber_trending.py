"""subscriber trending: a digest of the period's trending papers, with or without a profile

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch would rebuild SQLite's table without its AUTOINCREMENT (ids reused)
    op.add_column("subscriber", sa.Column("trending", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("subscriber", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("trending")
