"""Which stored papers have a vector: SQL only, no NumPy (`digestd status` reads it)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, func, literal
from sqlmodel import Session, col, select

from digestd.models import Paper, TextVector

PAPER_PREFIX = "paper:"  # a paper's key in `text_vector`: paper:<id>


def lacking_vector(identity: str) -> ColumnElement[bool]:
    """A condition on `paper`: no vector from the encoder `identity` is stored for it."""
    stored = exists().where(
        col(TextVector.encoder) == identity, col(TextVector.key) == literal(PAPER_PREFIX) + col(Paper.id)
    )
    return ~stored


def count_embedded(session: Session, identity: str) -> tuple[int, int]:
    """(stored papers with a vector from `identity`, stored papers)."""
    total = int(session.scalar(select(func.count()).select_from(Paper)) or 0)
    lacking = int(session.scalar(select(func.count()).select_from(Paper).where(lacking_vector(identity))) or 0)
    return total - lacking, total
