"""Build digests: papers and profiles in, `Digest`s out (pure; no database, no clock).

A first ranking: TF-IDF over the window, a profile's keywords and seed papers as
queries, excluded words as a hard filter, papers already sent left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from digestd.records import Digest, PaperRecord, Pick, Profile, Section


@dataclass
class Window:
    """The candidate papers of one run, vectorised once and shared by all subscribers."""

    papers: list[PaperRecord]
    referenced: dict[str, PaperRecord]
    vectorizer: TfidfVectorizer | None
    matrix: sparse.csr_matrix | None  # one row per window paper
    referenced_matrix: sparse.csr_matrix | None
    referenced_rows: dict[str, int]


def prepare_window(papers: Sequence[PaperRecord], *, referenced: Sequence[PaperRecord] = ()) -> Window:
    papers = list(papers)
    refs = {paper.id: paper for paper in referenced}
    if not papers:
        return Window(papers, refs, None, None, None, {})
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english", min_df=1)
    matrix = vectorizer.fit_transform([paper.text for paper in papers]).tocsr()
    ref_list = list(refs.values())
    ref_matrix = vectorizer.transform([paper.text for paper in ref_list]).tocsr() if ref_list else None
    return Window(papers, refs, vectorizer, matrix, ref_matrix, {p.id: i for i, p in enumerate(ref_list)})


def _excluded(paper: PaperRecord, words: Sequence[str]) -> bool:
    text = paper.text.lower()
    return any(re.search(rf"\b{re.escape(word.lower())}\b", text) for word in words)


def _keyword_hits(paper: PaperRecord, profile: Profile) -> list[str]:
    text = paper.text.lower()
    return [k.term for k in profile.keywords if re.search(rf"\b{re.escape(k.term.lower())}\b", text)]


def build_digest(
    window: Window, profile: Profile, *, period_start: datetime, period_end: datetime, now: datetime
) -> Digest:
    empty = Digest(profile, period_start, period_end, candidates=len(window.papers), generated_at=now)
    if window.vectorizer is None or window.matrix is None:
        return empty
    scores = np.zeros(len(window.papers))
    if profile.keywords:
        query = window.vectorizer.transform([" ".join(k.term for k in profile.keywords)])
        scores += (window.matrix @ query.T).toarray().ravel()
    seed_rows = [window.referenced_rows[s] for s in profile.seeds if s in window.referenced_rows]
    if seed_rows and window.referenced_matrix is not None:
        seeds = window.referenced_matrix[seed_rows]
        scores += (window.matrix @ seeds.T).toarray().max(axis=1)
    picks = []
    for index in np.argsort(-scores, kind="stable"):
        paper = window.papers[index]
        if scores[index] <= max(profile.min_score, 0) or paper.id in profile.already_sent:
            continue
        if _excluded(paper, profile.excluded):
            continue
        hits = _keyword_hits(paper, profile)
        reasons = (f"matched: {', '.join(hits)}",) if hits else ("close to your seed papers",)
        picks.append(Pick(paper=paper, score=round(float(scores[index]), 4), reasons=reasons, section="Your papers"))
        if len(picks) >= profile.max_papers:
            break
    sections = (Section("Your papers", tuple(picks)),) if picks else ()
    return Digest(profile, period_start, period_end, sections, candidates=len(window.papers), generated_at=now)


def build_digests(
    window: Window, profiles: Sequence[Profile], *, period_start: datetime, period_end: datetime, now: datetime
) -> list[Digest]:
    return [
        build_digest(window, profile, period_start=period_start, period_end=period_end, now=now) for profile in profiles
    ]
