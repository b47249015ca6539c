"""Ranking with a sentence encoder's vectors (`prepare_window(vectors=...)`, `build_digests(query_vectors=...)`).

The vectors here are written by hand, as data: each topic its own direction, so what the encoder
says (these papers are about the same thing) is known. Tests with a real model are in tests/embedding/.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

import numpy as np
import pytest

from digestd.ranking.digest import build_digests, prepare_window
from digestd.ranking.scoring import Evidence
from digestd.records import Digest, Keyword, PaperRecord, Profile

NOW = datetime(2026, 3, 2, 8, 0)
GRAPHS = "Graph neural networks pass messages between the nodes of a graph to learn node embeddings."


def paper(paper_id: str, title: str, abstract: str) -> PaperRecord:
    return PaperRecord(id=paper_id, title=title, abstract=abstract, published=date(2026, 3, 1))


# Every paper says "graph neural networks" once; only the first three are about them (the others
# use one as a tool for something else): the words cannot tell them apart, the encoder can.
ABOUT = [
    paper("2603.00101", "Oversmoothing in deep message passing", GRAPHS + " Deep stacks oversmooth node features."),
    paper("2603.00102", "Expressive power of message passing", GRAPHS + " We bound expressivity by the WL test."),
    paper("2603.00103", "Positional encodings for graph transformers", GRAPHS + " Laplacian positional encodings."),
]
TOOL = "We model the traffic of a city and, as one component, use graph neural networks for road segments."
USING = [
    paper("2603.00104", "Traffic forecasting for a city", TOOL + " Forecasts reach a day ahead."),
    paper("2603.00105", "Road maintenance planning", TOOL + " Maintenance budgets are planned by season."),
    paper("2603.00106", "Bus timetables from traffic data", TOOL + " Timetables adapt to congestion."),
]
OTHER = [
    paper(f"2603.0020{i}", f"Galaxy survey {i}", f"Galaxy clustering in survey field {i} with photometric redshifts.")
    for i in range(4)
]
WINDOW = [*USING, *ABOUT, *OTHER]  # the papers that use a GNN first: order alone must not decide
QUERY = "graph neural networks"


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


VECTORS = (
    {p.id: unit(1, 0.1 * i, 0) for i, p in enumerate(ABOUT)}
    | {p.id: unit(0.2, 1, 0.1 * i) for i, p in enumerate(USING)}
    | {p.id: unit(0, 0.1 * i, 1) for i, p in enumerate(OTHER)}
)
QUERY_VECTORS = {QUERY: unit(1, 0, 0)}


# Every keyword match counts as evidence (the encoder's calibrated levels ask the keyword's words to
# weigh half their best, which the one mention here does not): these tests are about the order.
ANY_MATCH = Evidence(keyword=0.0)


def digest(profile: Profile, vectors: dict | None, query_vectors: dict | None = None) -> Digest:
    window = prepare_window(WINDOW, vectors=vectors)
    return build_digests(
        window, [profile], period_start=NOW, period_end=NOW, now=NOW, query_vectors=query_vectors, evidence=ANY_MATCH
    )[0]


def ids(found: Digest) -> list[str]:
    return [pick.paper.id for pick in found.picks]


PROFILE = Profile(1, "a@example.org", keywords=(Keyword(QUERY),), max_papers=3)


def test_the_encoder_puts_the_papers_about_the_keywords_first() -> None:
    with_encoder = ids(digest(PROFILE, VECTORS, QUERY_VECTORS))
    assert set(with_encoder) == {p.id for p in ABOUT}
    without = ids(digest(PROFILE, None))
    assert set(without) != {p.id for p in ABOUT}  # the words alone cannot tell (else this test shows nothing)


def test_closeness_to_the_query_is_no_evidence_on_its_own() -> None:
    # An encoder that got it wrong puts the galaxy papers right on the query "coral reefs", but
    # they lack its words: with no paper of the window qualifying, the digest stays empty.
    profile = Profile(2, "b@example.org", keywords=(Keyword("coral reefs"),), max_papers=10)
    window = prepare_window(WINDOW, vectors=VECTORS)
    found = build_digests(
        window, [profile], period_start=NOW, period_end=NOW, now=NOW, query_vectors={"coral reefs": unit(0, 0, 1)}
    )[0]
    assert ids(found) == []


def test_a_seed_brings_the_papers_the_encoder_puts_near_it() -> None:
    # A survey of GNNs whose examples share words with the traffic papers: the words pick those,
    # the encoder (which reads the survey as about GNNs) the papers about GNNs.
    abstract = "We survey graph neural networks for node embeddings, with examples from city traffic and road segments."
    seed = paper("2401.00001", "A survey of graph neural networks", abstract)
    profile = Profile(3, "c@example.org", seeds=(seed.id,), max_papers=3)

    def sent(vectors: dict | None) -> set[str]:
        window = prepare_window(WINDOW, referenced=[seed], vectors=vectors)
        return set(ids(build_digests(window, [profile], period_start=NOW, period_end=NOW, now=NOW)[0]))

    assert sent(VECTORS | {seed.id: unit(1, 0.05, 0)}) == {p.id for p in ABOUT}
    assert sent(None) == {p.id for p in USING}


def test_a_paper_without_a_vector_ranks_the_window_without_the_encoder(caplog: pytest.LogCaptureFixture) -> None:
    partial = {key: vector for key, vector in VECTORS.items() if key != ABOUT[0].id}
    with caplog.at_level(logging.WARNING, logger="digestd.ranking.digest"):
        found = digest(PROFILE, partial, QUERY_VECTORS)
    assert "ranking without the sentence encoder: 1 of 10 papers have no vector" in caplog.text
    assert ids(found) == ids(digest(PROFILE, None))
