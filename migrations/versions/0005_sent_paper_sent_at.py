"""sent_paper.sent_at index, so old never-twice records can be deleted by time

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sent_paper_sent_at", "sent_paper", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_sent_paper_sent_at", table_name="sent_paper")
