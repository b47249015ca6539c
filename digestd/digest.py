"""The public ranking API: papers and profiles in, digests out. Pure: no database, no clock.

    window = prepare_window(papers, referenced=seed_and_rated_papers)   # once per run
    digests = build_digests(window, profiles, period_start=..., period_end=..., now=...)

`prepare_window` fits the TF-IDF space and clusters the window once; `build_digests`
scores profiles in chunks (see `ranking`) and returns one `Digest` per profile, in order.

Never twice: a paper whose id is in `Profile.already_sent` is never picked again. Ids
carry no version, so a revised version (v2, v3) of a paper already sent is not sent
again either, however much it changed: readers asked not to see a paper twice, and we
keep no text of what they were sent to judge a change by.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from digestd.clustering import Clusters, cluster_papers, plan_sections
from digestd.queries import PaperIndex, ProfileQuery, Queries, build_queries, index_papers
from digestd.ranking import Space, build_space, explain_picks, score_chunk, select_picks
from digestd.records import Digest, PaperRecord, Pick, Profile, Section

log = logging.getLogger(__name__)

CHUNK_CELLS = 4_000_000  # profiles × papers scored at once: ~16 MB per float32 array


@dataclass(frozen=True, eq=False)
class Window:
    """The candidate papers of one run, with their TF-IDF space, lookups and clusters."""

    papers: tuple[PaperRecord, ...]
    referenced: tuple[PaperRecord, ...]  # seed and rated papers outside the window
    space: Space
    index: PaperIndex
    clusters: Clusters

    @property
    def vectorizer(self) -> TfidfVectorizer:
        return self.space.vectorizer

    @property
    def matrix(self) -> sparse.csr_matrix:
        """TF-IDF rows: window papers first, then referenced papers."""
        return self.space.matrix

    @property
    def row_of(self) -> Mapping[str, int]:
        return self.index.row_of

    @property
    def labels(self) -> tuple[str, ...]:
        return self.clusters.labels


def prepare_window(papers: Sequence[PaperRecord], *, referenced: Sequence[PaperRecord] = ()) -> Window:
    """Fit the TF-IDF space over window + referenced papers and cluster the window, once per run."""
    window = tuple(_unique(papers, set()))
    extra = tuple(_unique(referenced, {paper.id for paper in window}))
    space = build_space([paper.text for paper in window], [paper.text for paper in extra])
    index = index_papers(window, extra)
    names = space.vectorizer.get_feature_names_out() if space.matrix.shape[1] else np.array([], dtype=object)
    clusters = cluster_papers(space.matrix[: len(window)], space.points, [str(name) for name in names])
    log.debug("window: %d papers, %d referenced, %d clusters", len(window), len(extra), len(clusters.labels))
    return Window(window, extra, space, index, clusters)


def build_digests(
    window: Window, profiles: Sequence[Profile], *, period_start: datetime, period_end: datetime, now: datetime
) -> list[Digest]:
    """One digest per profile, in the same order."""
    queries = build_queries(window.vectorizer, window.matrix[: len(window.papers)], window.index, profiles)
    digests = []
    for chunk in _chunks(profiles, len(window.papers)):
        asked = [queries.query_for(profile) for profile in chunk]
        scores = score_chunk(window.space, queries, asked, window.index.popularity)
        chosen = select_picks(scores, window.space.text_sims, [profile.max_papers for profile in chunk])
        for number, (query, rows) in enumerate(zip(asked, chosen, strict=True)):
            sections = _sections(window, queries, query, rows, scores[number, rows])
            digests.append(
                Digest(
                    profile=query.profile,
                    period_start=period_start,
                    period_end=period_end,
                    sections=sections,
                    candidates=len(window.papers),
                    generated_at=now,
                )
            )
    return digests


def build_digest(
    window: Window, profile: Profile, *, period_start: datetime, period_end: datetime, now: datetime
) -> Digest:
    """The digest of one profile."""
    return build_digests(window, [profile], period_start=period_start, period_end=period_end, now=now)[0]


def _sections(
    window: Window, queries: Queries, query: ProfileQuery, rows: np.ndarray, scores: np.ndarray
) -> tuple[Section, ...]:
    """Picks with reasons, grouped by the window's clusters."""
    reasons = explain_picks(window.space, queries, query, rows)
    sections = []
    for label, positions in plan_sections(rows.tolist(), window.clusters):
        picks = tuple(
            Pick(window.papers[rows[at]], round(float(scores[at]), 4), reasons[at], label) for at in positions
        )
        sections.append(Section(label=label, picks=picks))
    return tuple(sections)


def _chunks(profiles: Sequence[Profile], n_papers: int) -> Iterator[Sequence[Profile]]:
    size = max(64, CHUNK_CELLS // max(n_papers, 1))
    for start in range(0, len(profiles), size):
        yield profiles[start : start + size]


def _unique(papers: Sequence[PaperRecord], seen: set[str]) -> Iterator[PaperRecord]:
    """Papers in order, each id once, skipping ids in `seen`."""
    for paper in papers:
        if paper.id not in seen:
            seen.add(paper.id)
            yield paper
