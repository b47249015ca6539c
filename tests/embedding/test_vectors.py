"""Stored vectors (`embedding.vectors`) with the real all-MiniLM-L6-v2, on real SQLite files
(and PostgreSQL): embedded once, reused, embedded again when the text or the encoder changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Engine, func
from sqlmodel import col, select

from digestd.config import EncoderSettings
from digestd.embedding.encoder import Encoder
from digestd.embedding.stored import count_embedded
from digestd.embedding.vectors import (
    embed_stored,
    paper_key,
    paper_vectors,
    query_key,
    query_vectors,
    save_vectors,
)
from digestd.models import TextVector
from digestd.records import PaperRecord
from digestd.store import open_session, save_papers

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
TOPICS = ["graph neural networks", "diffusion models", "quantum error correction", "dark matter halos"]


def make_papers(count: int) -> list[PaperRecord]:
    return [
        PaperRecord(
            id=f"2611.{i:05d}",
            title=f"On {TOPICS[i % 4]}: study {i}",
            abstract=f"We study {TOPICS[i % 4]} in setting {i}.",
            categories=("cs.LG",),
            published=NOW.date(),
        )
        for i in range(count)
    ]


def store(engine: Engine, papers: list[PaperRecord]) -> None:
    with open_session(engine) as session:
        save_papers(session, papers, now=NOW)


def rows(engine: Engine) -> int:
    with open_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(TextVector)) or 0)


def check_vectors_are_stored_once_and_reused(engine: Engine, settings: EncoderSettings) -> None:
    papers = make_papers(6)
    store(engine, papers)
    first = Encoder(settings)
    vectors = paper_vectors(engine, first, papers)
    assert first.encoded == 6 and set(vectors) == {p.id for p in papers}
    for vector in vectors.values():
        assert vector.dtype == np.float32 and vector.shape == (384,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    again = Encoder(settings)  # another run: everything comes from the database
    reused = paper_vectors(engine, again, papers)
    assert again.encoded == 0
    assert all(np.array_equal(reused[pid], vectors[pid]) for pid in vectors)
    assert rows(engine) == 6


def test_paper_vectors_are_stored_once_and_reused(engine: Engine, encoder_settings: EncoderSettings) -> None:
    check_vectors_are_stored_once_and_reused(engine, encoder_settings)


@pytest.mark.postgres
def test_paper_vectors_on_postgresql(pg: Engine, encoder_settings: EncoderSettings) -> None:
    check_vectors_are_stored_once_and_reused(pg, encoder_settings)
    # A second process that embedded the same paper meanwhile: its insert is a no-op, not an error.
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    encoder = Encoder(encoder_settings)
    save_vectors(pg, encoder.identity, [(paper_key("2611.00000"), "other", vector)], replace=False)
    with open_session(pg) as session:
        kept = session.scalar(select(TextVector.text_hash).where(col(TextVector.key) == paper_key("2611.00000")))
    assert kept != "other"


def test_a_paper_whose_text_changed_is_embedded_again(engine: Engine, encoder_settings: EncoderSettings) -> None:
    papers = make_papers(4)
    store(engine, papers)
    before = paper_vectors(engine, Encoder(encoder_settings), papers)
    revised = [replace(papers[0], abstract="A new version about protein folding."), *papers[1:]]
    encoder = Encoder(encoder_settings)
    after = paper_vectors(engine, encoder, revised)
    assert encoder.encoded == 1
    assert not np.allclose(after[papers[0].id], before[papers[0].id])
    assert all(np.array_equal(after[p.id], before[p.id]) for p in papers[1:])
    assert rows(engine) == 4  # replaced, not added
    later = Encoder(encoder_settings)
    assert np.array_equal(paper_vectors(engine, later, revised)[papers[0].id], after[papers[0].id])
    assert later.encoded == 0


def test_another_encoder_never_reuses_the_vectors(engine: Engine, encoder_settings: EncoderSettings) -> None:
    papers = make_papers(3)
    store(engine, papers)
    paper_vectors(engine, Encoder(encoder_settings), papers)
    shorter = Encoder(replace(encoder_settings, max_tokens=64))
    assert shorter.identity != Encoder(encoder_settings).identity
    paper_vectors(engine, shorter, papers)
    assert shorter.encoded == 3
    assert rows(engine) == 6
    with open_session(engine) as session:
        assert count_embedded(session, shorter.identity) == (3, 3)
        assert count_embedded(session, "some/other-model max_tokens=128") == (0, 3)


def test_keyword_queries_are_stored_by_their_hash(engine: Engine, encoder_settings: EncoderSettings) -> None:
    encoder = Encoder(encoder_settings)
    queries = ["graph neural networks, diffusion models", "", "dark matter"]
    found = query_vectors(engine, encoder, [*queries, queries[0]])
    assert set(found) == {queries[0], queries[2]} and encoder.encoded == 2
    with open_session(engine) as session:
        keys = set(session.scalars(select(TextVector.key)))
    assert keys == {query_key(queries[0]), query_key(queries[2])}
    again = Encoder(encoder_settings)
    assert np.array_equal(query_vectors(engine, again, queries)[queries[2]], found[queries[2]])
    assert again.encoded == 0
    # Similar texts are near, unrelated ones far: the vectors are the model's, not noise.
    papers = make_papers(2)
    store(engine, papers)
    paper = paper_vectors(engine, again, papers)
    assert float(paper[papers[0].id] @ found[queries[0]]) > float(paper[papers[0].id] @ found[queries[2]])


def test_embed_stored_fills_in_the_papers_without_a_vector(engine: Engine, encoder_settings: EncoderSettings) -> None:
    papers = make_papers(7)
    store(engine, papers)
    paper_vectors(engine, Encoder(encoder_settings), papers[:2])
    encoder, seen = Encoder(encoder_settings), []
    report = embed_stored(engine, encoder, lambda done, todo: seen.append((done, todo)))
    assert (report.embedded, report.before, report.total) == (5, 2, 7)
    assert encoder.encoded == 5 and seen[0] == (0, 5) and seen[-1] == (5, 5)
    again = Encoder(encoder_settings)
    assert embed_stored(engine, again).embedded == 0 and again.encoded == 0
