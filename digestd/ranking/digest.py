"""The public ranking API: papers and profiles in, digests out. Pure: no database, no clock.

    window = prepare_window(papers, referenced=seed_and_rated_papers)   # once per run
    digests = build_digests(window, profiles, period_start=..., period_end=..., now=...)

With a sentence encoder (`digestd.embedding`), its vectors come in as data: `vectors=` (paper id →
unit vector) for `prepare_window`, `query_vectors=` (`Profile.keyword_query` → unit vector) for
`build_digests`; the ranking never loads a model.

`prepare_window` fits the TF-IDF space and finds the window's label phrases once; `build_digests`
scores profiles in chunks (see `ranking`) and returns one `Digest` per profile, in order.

Never twice: a paper whose id is in `Profile.already_sent` is never picked again. Ids
carry no version, so a revised version (v2, v3) of a paper already sent is not sent
again either, however much it changed: readers asked not to see a paper twice, and we
keep no text of what they were sent to judge a change by.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from digestd.ranking.phrases import Phrases, find_phrases
from digestd.ranking.queries import PaperIndex, ProfileQuery, Queries, build_queries, index_papers
from digestd.ranking.reasons import keyword_matches, reason_table
from digestd.ranking.scoring import (
    ENCODER_EVIDENCE,
    EVIDENCE,
    Evidence,
    Space,
    build_space,
    score_chunk,
    select_picks,
)
from digestd.ranking.sections import plan_chunk_sections
from digestd.ranking.trending import has_interests, trend_reason, trend_scores
from digestd.records import Digest, PaperRecord, Pick, Profile, Section

log = logging.getLogger(__name__)

CHUNK_CELLS = 4_000_000  # profiles × papers scored at once: ~16 MB per float32 array


@dataclass(frozen=True, eq=False)
class Window:
    """The candidate papers of one run, with their TF-IDF space, lookups and label phrases."""

    papers: tuple[PaperRecord, ...]
    referenced: tuple[PaperRecord, ...]  # seed and rated papers outside the window
    space: Space
    index: PaperIndex
    phrases: Phrases
    trend: np.ndarray  # per window paper, 0..1 (`trending`)
    readers: Mapping[str, int]  # per paper id: readers it was sent to or liked by

    @cached_property
    def paper_array(self) -> np.ndarray:
        """`papers` as an object array, to gather many picks' papers at once."""
        array = np.empty(len(self.papers), dtype=object)
        array[:] = self.papers
        return array

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
    def encoded(self) -> bool:
        """Whether the similarities include a sentence encoder's (`prepare_window(vectors=...)`)."""
        return self.space.encoded is not None

    @property
    def evidence(self) -> Evidence:
        """The calibrated levels for this window's kind of similarity."""
        return ENCODER_EVIDENCE if self.encoded else EVIDENCE

    @property
    def labels(self) -> tuple[str, ...]:
        """The phrases that may name a section."""
        return self.phrases.names


def prepare_window(
    papers: Sequence[PaperRecord],
    *,
    referenced: Sequence[PaperRecord] = (),
    readers: Mapping[str, int] | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> Window:
    """Fit the TF-IDF space on the window, place the referenced papers in it, find label phrases: once per run.
    `readers` (paper id → readers who were sent or liked it) ranks trending papers no source gave upvotes for.
    `vectors` (paper id → a sentence encoder's unit vector) are mixed into the similarities when every
    window and referenced paper has one."""
    with _collector_paused():
        return _prepare_window(papers, referenced, readers or {}, vectors)


def _prepare_window(
    papers: Sequence[PaperRecord],
    referenced: Sequence[PaperRecord],
    readers: Mapping[str, int],
    vectors: Mapping[str, np.ndarray] | None,
) -> Window:
    window = tuple(_unique(papers, set()))
    extra = tuple(_unique(referenced, {paper.id for paper in window}))
    texts = [paper.text for paper in window]
    space = build_space(texts, [paper.text for paper in extra], _stacked(vectors, (*window, *extra)))
    index = index_papers(window, extra)
    phrases = find_phrases(texts)
    log.debug("window: %d papers, %d referenced, %d label phrases", len(window), len(extra), len(phrases.names))
    return Window(window, extra, space, index, phrases, trend_scores(window, readers), readers)


def _stacked(vectors: Mapping[str, np.ndarray] | None, papers: Sequence[PaperRecord]) -> np.ndarray | None:
    """The papers' vectors as rows, or None (with a warning) when one is missing: a space mixing
    encoded and unencoded papers would rank them on different scales."""
    if not vectors or not papers:
        return None
    missing = sum(paper.id not in vectors for paper in papers)
    if missing:
        log.warning("ranking without the sentence encoder: %d of %d papers have no vector", missing, len(papers))
        return None
    return np.stack([np.asarray(vectors[paper.id], dtype=np.float32) for paper in papers])


def build_digests(
    window: Window,
    profiles: Sequence[Profile],
    *,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    evidence: Evidence | None = None,
    query_vectors: Mapping[str, np.ndarray] | None = None,
) -> list[Digest]:
    """One digest per profile, in the same order. `evidence`: the levels a paper must reach on its
    own (the calibrated defaults for the window's similarities unless a benchmark tries others).
    `query_vectors`: with an encoder, `Profile.keyword_query` → its unit vector."""
    with _collector_paused():
        chosen = window.evidence if evidence is None else evidence
        return _build_digests(window, profiles, period_start, period_end, now, chosen, query_vectors)


def _build_digests(
    window: Window,
    profiles: Sequence[Profile],
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    evidence: Evidence,
    query_vectors: Mapping[str, np.ndarray] | None,
) -> list[Digest]:
    matrix = window.matrix[: len(window.papers)]
    vectors = query_vectors if window.encoded else None
    queries = build_queries(window.vectorizer, matrix, window.index, profiles, evidence.keyword, vectors)
    digests: list[Digest] = []

    def assemble(asked: list[ProfileQuery], ranked: Future[Ranked]) -> None:
        chosen, scores, lifted = ranked.result()
        sections = _sections(window, queries, asked, chosen, scores, lifted, evidence)
        digests.extend(
            Digest(query.profile, period_start, period_end, found, len(window.papers), now)
            for query, found in zip(asked, sections, strict=True)
        )

    # Scoring (numpy and scipy, which release the GIL) runs one chunk ahead in a thread
    # while this thread turns the previous chunk into digests: both cores stay busy.
    with ThreadPoolExecutor(max_workers=1) as pool:
        previous = None
        for chunk in _chunks(profiles, len(window.papers)):
            asked = [queries.query_for(profile) for profile in chunk]
            ranked = pool.submit(_rank_chunk, window, queries, asked, evidence)
            if previous:
                assemble(*previous)
            previous = (asked, ranked)
        if previous:
            assemble(*previous)
    return digests


Ranked = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rank_chunk(window: Window, queries: Queries, asked: list[ProfileQuery], evidence: Evidence) -> Ranked:
    """Picked window rows per profile (score order, -1 padded), their scores rounded for display,
    and whether each pick was lifted by feedback (no evidence of its own)."""
    scores, lifted = score_chunk(window.space, queries, asked, window.index.popularity, window.trend, evidence)
    limits = [query.profile.max_papers for query in asked]
    chosen = select_picks(scores, window.space.text_sims, limits, lifted, evidence.lift_share)
    at = np.maximum(chosen, 0)
    picked = np.take_along_axis(scores, at, axis=1)
    return chosen, np.round(picked.astype(np.float64), 4), np.take_along_axis(lifted, at, axis=1) & (chosen >= 0)


def build_digest(
    window: Window, profile: Profile, *, period_start: datetime, period_end: datetime, now: datetime
) -> Digest:
    """The digest of one profile."""
    return build_digests(window, [profile], period_start=period_start, period_end=period_end, now=now)[0]


def _sections(
    window: Window,
    queries: Queries,
    asked: list[ProfileQuery],
    chosen: np.ndarray,
    scores: np.ndarray,
    lifted: np.ndarray,
    evidence: Evidence,
) -> list[tuple[Section, ...]]:
    """Each profile's picks with reasons, in sections by what brought them: a whole chunk at once."""
    owners, slots = np.nonzero(chosen >= 0)  # -1 padding is on the right: picks stay in rank order
    rows = chosen[owners, slots]
    matched = keyword_matches(queries, asked, owners, rows)  # what brought each pick, in words
    table, which = reason_table(
        window.space, queries, asked, owners, rows, lifted[owners, slots], evidence.reference, matched
    )
    trending = np.array([query.profile.trending for query in asked], dtype=bool)
    for at in np.flatnonzero(trending[owners]).tolist() if trending.any() else ():
        trend = trend_reason(window.papers[rows[at]], window.readers)
        # without interests the trend is the only reason ("related to your interests" would not be true)
        reasons = (*table[which[at]], trend) if has_interests(asked[owners[at]].profile) else (trend,)
        which[at] = len(table)
        table.append(reasons)
    plan = plan_chunk_sections(owners, rows, window.phrases, matched, queries.terms)
    picks = _new_picks(
        window.paper_array[rows[plan.order]].tolist(),
        scores[owners, slots][plan.order].tolist(),
        map(table.__getitem__, which[plan.order].tolist()),
        np.repeat(np.array(plan.labels, dtype=object), np.diff(plan.starts)).tolist(),
    )
    bounds = plan.starts.tolist()
    sections = [
        Section(label, tuple(picks[a:b])) for label, a, b in zip(plan.labels, bounds[:-1], bounds[1:], strict=True)
    ]
    edges = np.searchsorted(plan.owners, np.arange(len(asked) + 1)).tolist()
    return [tuple(sections[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]


# Pick's slots, field by field, for `_new_picks`.
_PICK_SETTERS = tuple(getattr(Pick, field.name).__set__ for field in fields(Pick))
_new_pick = Pick.__new__


def _new_picks(papers: list[PaperRecord], *columns: Iterable[Any]) -> list[Pick]:
    """`Pick(paper, score, reasons, section)` for each paper, the other fields given column by column:
    equal picks, made at half the cost. A frozen dataclass's __init__ sets each field through
    object.__setattr__ (the biggest cost of assembling 2 million picks); the slots' own setters,
    mapped over a column, do it in C. A field added to Pick is refused here, not left unset."""
    if len(columns) + 1 != len(_PICK_SETTERS):
        raise TypeError(f"Pick has {len(_PICK_SETTERS)} fields, {len(columns) + 1} given")
    picks = [_new_pick(Pick) for _ in papers]
    for setter, values in zip(_PICK_SETTERS, (papers, *columns), strict=True):
        list(map(setter, picks, values))
    return picks


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (the step makes no cycles). Millions of new picks and
    reasons would otherwise set off full collections that each walk every object in the
    process, profiles included: a third of the CPU time at 100,000 subscribers."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
