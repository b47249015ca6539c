"""Trending papers: what a subscriber who asked for them (`Profile.trending`) gets first.

A paper's trend is in 0..1. Where a source gave its popularity (Hugging Face upvotes) it
is 0.5 to 1, by log upvotes against the window's most upvoted; otherwise it is below 0.5,
by how many sources carried it and how many readers were sent it or liked it, against the
window's most picked. A profile with no interests ranks the window by trend alone; one
with interests has the scores of the papers that match them raised by up to (1 +
`TREND_WEIGHT`) times, so a trending paper that barely matches stays out. Never-twice and the
other masks still apply (the masked scores stay -inf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from digestd.records import PaperRecord, Profile

TREND_WEIGHT = 1.0


def count_sources(paper: PaperRecord) -> int:
    return len({name for name in paper.source.split(",") if name.strip()}) or 1


def trend_scores(papers: Sequence[PaperRecord], readers: Mapping[str, int]) -> np.ndarray:
    upvotes = np.array([max(paper.popularity or 0, 0) for paper in papers], dtype=np.float64)
    picks = np.array([count_sources(p) + readers.get(p.id, 0) for p in papers], dtype=np.float64)
    popular = np.log1p(upvotes) / max(float(np.log1p(upvotes).max(initial=0)), 1e-9)
    picked = picks / max(float(picks.max(initial=0)), 1.0)
    return np.where(upvotes > 0, 0.5 + 0.5 * popular, 0.5 * picked).astype(np.float32)


def has_interests(profile: Profile) -> bool:
    return bool(profile.keywords or profile.categories or profile.authors or profile.seeds or profile.liked)


def add_trend(scores: np.ndarray, profiles: Sequence[Profile], trend: np.ndarray) -> None:
    """Add the trend to the rows of profiles that asked for trending papers (in place)."""
    asking = np.array([row for row, profile in enumerate(profiles) if profile.trending], dtype=np.int64)
    if not len(asking) or not len(trend):
        return
    interested = np.array([has_interests(profiles[row]) for row in asking.tolist()], dtype=bool)
    # All the chunk's rows of each kind at once, with the same float32 arithmetic as row by row.
    if interested.any():
        rows = scores[asking[interested]]
        rows *= np.where(rows > 0, 1 + TREND_WEIGHT * trend, 1)
        scores[asking[interested]] = rows
    scores[asking[~interested]] += TREND_WEIGHT * trend


def trend_reason(paper: PaperRecord, readers: Mapping[str, int]) -> str:
    """Why a paper counts as trending, as the digest says it."""
    if paper.popularity:
        return f"trending: {paper.popularity} upvote{'' if paper.popularity == 1 else 's'} on Hugging Face"
    sources, picked = count_sources(paper), readers.get(paper.id, 0)
    parts = [f"carried by {sources} source{'' if sources == 1 else 's'}"]
    if picked:
        parts.append(f"picked for {picked} reader{'' if picked == 1 else 's'}")
    return "trending: " + ", ".join(parts)
