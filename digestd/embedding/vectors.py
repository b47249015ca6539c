"""The stored vectors (`text_vector`): load what is there, embed and store what is not.

A paper's vector is keyed `paper:<id>` and keeps the SHA-256 of the text it was made from
(`PaperRecord.text`): a paper whose title or abstract changed (a new version) is embedded
again. A keyword query's is keyed `query:<SHA-256 of the query>`. Every row names the
encoder that made it (`Encoder.identity`), and only its own rows are read back.

Rows are written with `INSERT ... ON CONFLICT`, so two workers embedding the same paper on
PostgreSQL never collide: a new vector is inserted unless one is there already, a stale one
is replaced. Ids are read in chunks, so no `IN (...)` list is longer than 500.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from digestd.embedding.encoder import Encoder, explain
from digestd.embedding.stored import PAPER_PREFIX, count_embedded, lacking_vector
from digestd.errors import EncoderError
from digestd.models import Paper, TextVector
from digestd.records import PaperRecord
from digestd.store import insert_on_conflict, open_session, to_record

log = logging.getLogger(__name__)

_CHUNK = 500  # keys per IN (...) query, and rows per INSERT
_PAGE = 512  # texts embedded, then stored, at a time
_DTYPE = np.dtype("<f4")

Progress = Callable[[int, int], None]  # (papers embedded so far, papers to embed)
T = TypeVar("T")


def or_without_encoder(embed: Callable[[], T]) -> T | None:
    """`embed()`, or None when the encoder fails or the database refuses its vectors: logged,
    and the caller (a send, a preview) ranks without the encoder."""
    try:
        return embed()
    except (EncoderError, SQLAlchemyError) as error:
        reason = explain(error) if isinstance(error, EncoderError) else f"the vectors cannot be stored: {error}"
        log.error("ranking without the sentence encoder: %s", reason)
        return None


def paper_key(paper_id: str) -> str:
    return f"{PAPER_PREFIX}{paper_id}"


def query_key(text: str) -> str:
    return f"query:{text_hash(text)}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Wanted:
    key: str
    text: str
    hash: str


def load_vectors(session: Session, identity: str, keys: Iterable[str]) -> dict[str, tuple[str, np.ndarray]]:
    """Key → (text hash, vector) of the rows `identity` stored for `keys`."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, tuple[str, np.ndarray]] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = select(TextVector.key, TextVector.text_hash, TextVector.vector).where(
            col(TextVector.encoder) == identity, col(TextVector.key).in_(wanted[start : start + _CHUNK])
        )
        for key, hashed, blob in session.execute(query):
            found[key] = (hashed, np.frombuffer(blob, dtype=_DTYPE))
    return found


def save_vectors(engine: Engine, identity: str, rows: Sequence[tuple[str, str, np.ndarray]], *, replace: bool) -> None:
    """Store (key, text hash, vector) rows; `replace`: a row already there is overwritten
    (its text changed), else left as it is (another process stored the same text first)."""
    rows = sorted(rows, key=lambda row: row[0])  # one order for every process: two never wait on each other
    for start in range(0, len(rows), _CHUNK):
        values = [
            {"key": key, "encoder": identity, "text_hash": hashed, "vector": vector.astype(_DTYPE).tobytes()}
            for key, hashed, vector in rows[start : start + _CHUNK]
        ]
        statement = insert_on_conflict(engine.dialect.name, TextVector).values(values)
        if replace:
            excluded = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=["key", "encoder"], set_={"text_hash": excluded.text_hash, "vector": excluded.vector}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=["key", "encoder"])
        with open_session(engine) as session:
            session.execute(statement)


def _vectors(engine: Engine, encoder: Encoder, wanted: Sequence[_Wanted], what: str) -> dict[str, np.ndarray]:
    """Key → vector for every wanted text (no key twice): stored ones reused, the others
    embedded and stored a page at a time, so that an interrupted run keeps what it did."""
    with open_session(engine) as session:
        stored = load_vectors(session, encoder.identity, [w.key for w in wanted])
    result: dict[str, np.ndarray] = {}
    missing: list[_Wanted] = []
    for item in wanted:
        found = stored.get(item.key)
        if found is not None and found[0] == item.hash:
            result[item.key] = found[1]
        else:
            missing.append(item)
    for start in range(0, len(missing), _PAGE):
        page = missing[start : start + _PAGE]
        rows = encoder.encode([item.text for item in page])
        fresh = [(item.key, item.hash, row) for item, row in zip(page, rows, strict=True)]
        save_vectors(engine, encoder.identity, [r for r in fresh if r[0] not in stored], replace=False)
        save_vectors(engine, encoder.identity, [r for r in fresh if r[0] in stored], replace=True)
        result.update((key, row) for key, _, row in fresh)
        done = start + len(page)
        log.info("embedded %d of %d %s (%d others were stored)", done, len(missing), what, len(wanted) - len(missing))
    return result


def paper_vectors(engine: Engine, encoder: Encoder, papers: Iterable[PaperRecord]) -> dict[str, np.ndarray]:
    """Paper id → unit float32 vector of its text, for every paper given (embedding those
    without a stored vector, or whose text changed since)."""
    unique = {paper.id: paper for paper in papers}
    wanted = [_Wanted(paper_key(pid), paper.text, text_hash(paper.text)) for pid, paper in unique.items()]
    found = _vectors(engine, encoder, wanted, "papers")
    return {pid: found[paper_key(pid)] for pid in unique}


def query_vectors(engine: Engine, encoder: Encoder, texts: Iterable[str]) -> dict[str, np.ndarray]:
    """Text → unit float32 vector, for every non-empty text (keyword queries: `Profile.keyword_query`)."""
    unique = [text for text in dict.fromkeys(texts) if text]
    found = _vectors(engine, encoder, [_Wanted(query_key(text), text, text_hash(text)) for text in unique], "queries")
    return {text: found[query_key(text)] for text in unique}


@dataclass(frozen=True)
class EmbedReport:
    """What `embed_stored` did."""

    embedded: int  # papers embedded by this run
    before: int  # papers that had a vector already
    total: int  # papers stored


def embed_stored(engine: Engine, encoder: Encoder, progress: Progress | None = None) -> EmbedReport:
    """Embed every stored paper that has no vector from `encoder` yet, a page at a time (each
    page stored before the next is embedded, so an interrupted run keeps what it did)."""
    with open_session(engine) as session:
        before, total = count_embedded(session, encoder.identity)
    todo, done, after, encoded = total - before, 0, "", encoder.encoded
    if progress is not None:
        progress(0, todo)
    while done < todo:
        with open_session(engine) as session:
            query = select(Paper).where(lacking_vector(encoder.identity), col(Paper.id) > after)
            page = [to_record(p) for p in session.scalars(query.order_by(col(Paper.id)).limit(_PAGE))]
        if not page:  # papers deleted, or embedded by another process meanwhile
            break
        paper_vectors(engine, encoder, page)
        done, after = min(done + len(page), todo), page[-1].id
        if progress is not None:
            progress(done, todo)
    return EmbedReport(embedded=encoder.encoded - encoded, before=before, total=total)
