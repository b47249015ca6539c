"""text_vector: the sentence encoder's vectors of papers and keyword queries, per encoder

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "text_vector",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=210), nullable=False),
        sa.Column("encoder", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("text_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", "encoder"),
    )


def downgrade() -> None:
    op.drop_table("text_vector")
