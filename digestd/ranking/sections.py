"""Digest sections from the digest's own picks, each named by a label all its papers hold.

For a whole chunk of digests at once, every pick may join a section named by one of the
reader's keywords it matched (what brought it) or by one of its label phrases (`phrases`):
it joins the candidate that the most of its digest's picks share, the reader's keywords
first, rarer (more distinctive) phrases before common ones. So every section's label occurs
in each of its papers. Papers that share no label with another go under "More papers"; a
digest of `SMALL_DIGEST` picks or fewer is one section, named when one label fits most of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from digestd.ranking.phrases import Phrases

MORE_PAPERS = "More papers"
SINGLE_SECTION = "Your papers"
SMALL_DIGEST = 5  # picks; up to this many make one section
MAX_SECTIONS = 5  # topic sections before "More papers"
MATCHED_LABELS = 3  # keywords a paper may be filed under: the first it matched, as its reasons name them
KEYWORD_WEIGHT = 1e6  # the reader's own keyword wins whenever it is shared by as many picks
_UNNAMED = {-1: MORE_PAPERS, -2: SINGLE_SECTION}


@dataclass(frozen=True, eq=False)
class SectionPlan:
    """The sections of many digests: `order[starts[s]:starts[s + 1]]` are the picks of section s."""

    order: np.ndarray  # pick numbers, section by section
    starts: np.ndarray  # len(labels) + 1 bounds into `order`
    labels: list[str]
    owners: np.ndarray  # the digest of each section, ascending


def plan_chunk_sections(
    owners: np.ndarray,
    rows: np.ndarray,
    phrases: Phrases,
    matched: np.ndarray | None = None,
    keywords: Sequence[str] = (),
) -> SectionPlan:
    """Sections of the picks of many digests at once. `owners` (ascending) says which digest each pick
    is in, each digest's picks in rank order; `rows` are their window rows; `matched` (pick × any
    number of columns, -1 padded) the reader's keywords each pick matched, as numbers into `keywords`.

    A digest of up to SMALL_DIGEST picks is one section, named by the label most of it holds. A larger
    one gets a section per label that two picks or more join (the first MAX_SECTIONS in rank order),
    then "More papers"; none such, and it is one section.
    """
    if not len(rows):
        nothing = np.zeros(0, dtype=np.int64)
        return SectionPlan(order=nothing, starts=np.zeros(1, dtype=np.int64), labels=[], owners=nothing)
    candidates = phrases.top[rows]
    if matched is not None and matched.shape[1]:
        first = _first_matches(matched)
        candidates = np.c_[np.where(first >= 0, first + len(phrases.names), -1), candidates]
    weights = np.r_[phrases.weights, np.full(len(keywords), KEYWORD_WEIGHT)]
    sizes = np.bincount(owners)
    chosen, fitting = _choose_labels(owners, candidates, weights, sizes)
    chosen = np.where(sizes[owners] <= SMALL_DIGEST, fitting[owners], chosen)
    # A keyword and the phrase it is ("surface codes", or "surface code") make one section.
    same = np.arange(max(len(weights), 1))  # (one, unused, when there is no label)
    for at in np.unique(chosen[chosen >= len(phrases.names)]).tolist():
        phrase = phrases.number_of(keywords[at - len(phrases.names)])
        same[at] = at if phrase < 0 else phrase
    section, label = _number_sections(owners, np.where(chosen >= 0, same[np.maximum(chosen, 0)], chosen), sizes)
    order = np.lexsort((section, owners))
    keys = owners[order] * (MAX_SECTIONS + 1) + section[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    # Named as the reader wrote it when a keyword brought some of its papers (keywords come last).
    shown = np.where(label[order[starts]] >= 0, np.maximum.reduceat(chosen[order], starts), label[order[starts]])
    names = [*phrases.names, *keywords]
    texts = [phrases.written(names[at]) if at >= 0 else _UNNAMED[at] for at in shown.tolist()]
    return SectionPlan(order=order, starts=np.r_[starts, len(order)], labels=texts, owners=owners[order[starts]])


def _first_matches(matched: np.ndarray) -> np.ndarray:
    """The first MATCHED_LABELS keywords of each row of `matched`, left-aligned, -1 padded."""
    found = matched >= 0
    rank = np.cumsum(found, axis=1) - 1
    kept = found & (rank < MATCHED_LABELS)
    first = np.full((len(matched), MATCHED_LABELS), -1, dtype=np.int64)
    rows, columns = np.nonzero(kept)
    first[rows, rank[rows, columns]] = matched[rows, columns]
    return first


def _choose_labels(
    owners: np.ndarray, candidates: np.ndarray, weights: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pick, the label it joins (-1: none shared); per digest, the label most of it holds (-2: none)."""
    valid = candidates >= 0
    if not valid.any():  # no label at all (a window too small for phrases, a trending digest)
        return np.full(len(owners), -1, dtype=np.int64), np.full(len(sizes), -2, dtype=np.int64)
    groups, group_of, shared = np.unique(
        (owners[:, None] * len(weights) + candidates)[valid], return_inverse=True, return_counts=True
    )
    group = np.full(candidates.shape, -1, dtype=np.int64)
    group[valid] = group_of.ravel()
    weight = np.where(valid, weights[np.maximum(candidates, 0)], 0.0)
    # Each pick joins its label that the most picks of its digest share (squared: bigger sections
    # first), the rarer of equally shared ones; a pick then left alone joins a section that formed.
    column = _best_column(np.where(valid, shared[group], 0), weight)
    at = np.arange(len(owners))
    joined = np.where(column >= 0, group[at, column], -1)
    taken = np.bincount(joined[joined >= 0], minlength=len(groups))
    alone = np.flatnonzero((column < 0) | (taken[joined] < 2))
    if len(alone):
        stayed = np.where(valid[alone], taken[group[alone]], 0)
        column[alone] = _best_column(stayed, weight[alone])
    chosen = np.where(column >= 0, candidates[at, column], -1)
    # A small digest's label: the best of those that more than half of its picks hold.
    group_owner, group_label = groups // len(weights), groups % len(weights)
    fits = np.flatnonzero((sizes[group_owner] <= SMALL_DIGEST) & (2 * shared > sizes[group_owner]))
    best = fits[np.lexsort((group_label[fits], -(shared[fits] ** 2) * weights[group_label[fits]], group_owner[fits]))]
    best = best[np.r_[True, group_owner[best][1:] != group_owner[best][:-1]]] if len(best) else best
    fitting = np.full(len(sizes), -2, dtype=np.int64)
    fitting[group_owner[best]] = group_label[best]
    return chosen, fitting


def _best_column(shared: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per pick, the column of its best candidate among those two picks or more share (-1: none)."""
    if not shared.shape[1]:
        return np.full(len(shared), -1, dtype=np.int64)
    score = np.where(shared >= 2, np.square(shared, dtype=np.float64) * weights, 0.0)
    column = score.argmax(axis=1)
    return np.where(score[np.arange(len(score)), column] > 0, column, -1)


def _number_sections(owners: np.ndarray, pick_label: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pick, its section's number in its digest and that section's label (-1 "More papers",
    -2 the one section of a digest with no shared label)."""
    small = sizes[owners] <= SMALL_DIGEST
    topical = np.flatnonzero((pick_label >= 0) & ~small)
    keys = owners[topical] * (int(pick_label.max(initial=0)) + 1) + pick_label[topical]
    groups, first, group_of = np.unique(keys, return_index=True, return_inverse=True)
    group_owner = owners[topical[first]]
    by_rank = np.lexsort((first, group_owner))  # each digest's sections in the rank of their best pick
    rank = np.empty(len(groups), dtype=np.int64)
    rank[by_rank] = np.arange(len(groups)) - np.searchsorted(group_owner[by_rank], group_owner[by_rank])
    section = np.full(len(owners), MAX_SECTIONS, dtype=np.int64)
    label = np.full(len(owners), -1, dtype=np.int64)
    kept = rank[group_of.ravel()] < MAX_SECTIONS
    section[topical[kept]] = rank[group_of.ravel()][kept]
    label[topical[kept]] = pick_label[topical[kept]]
    has_sections = np.bincount(group_owner[rank < MAX_SECTIONS], minlength=len(sizes)) > 0
    whole = small | ~has_sections[owners]
    section[whole] = 0
    label[whole] = np.where(small[whole], pick_label[whole], -2)
    return section, label


def plan_sections(
    rows: Sequence[int], phrases: Phrases, matched: np.ndarray | None = None, keywords: Sequence[str] = ()
) -> list[tuple[str, list[int]]]:
    """(label, positions in `rows`) per section, for one digest's window rows in rank order."""
    owners = np.zeros(len(rows), dtype=np.int64)
    plan = plan_chunk_sections(owners, np.asarray(rows, dtype=np.int64), phrases, matched, keywords)
    bounds, order = plan.starts.tolist(), plan.order.tolist()
    return [(label, order[a:b]) for label, a, b in zip(plan.labels, bounds[:-1], bounds[1:], strict=True)]
