"""Why each pick is in a digest: short human reasons, made for a whole chunk of digests at once.

A pick's reasons, in this order, each when it applies: the profile's keywords found in the
paper ("matched: a, b, c", only keywords that occur in it, or their plural/singular twin),
the nearest seed paper and the nearest liked paper (when as close as the evidence level),
a followed author, a chosen category. A pick lifted by feedback (no evidence of its own)
says which of the digest's own papers it resembles: "close to: <title>".

There are about twenty picks per subscriber, so everything that can be is done with
arrays over all the picks of a chunk; Python touches each pick only to build its strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from digestd.ranking.queries import ProfileQuery, Queries
from digestd.ranking.scoring import EVIDENCE, MODEL_MIN_LIKES, Space

MATCHED_SHOWN = 3  # keywords named in "matched: ..."


def explain_picks(
    space: Space,
    queries: Queries,
    asked: Sequence[ProfileQuery],
    owners: np.ndarray,
    rows: np.ndarray,
    lifted: np.ndarray | None = None,
    reference_level: float = EVIDENCE.reference,
    matched: np.ndarray | None = None,
) -> list[tuple[str, ...]]:
    """Reasons (at least one each) for picks given as (index into `asked`, window row) pairs, in
    rank order per owner; `lifted` marks the picks admitted by feedback alone; `matched`: their
    `keyword_matches`, when the caller has them already."""
    if not len(rows):
        return []
    if matched is None:
        matched = keyword_matches(queries, asked, owners, rows)
    columns = [_matched_keywords(queries, matched)]
    for label in ("you liked", "close to your seed paper"):
        texts, close = _nearest_references(space, queries, asked, owners, rows, label, reference_level)
        columns.insert(1, [text if near else None for text, near in zip(texts, close, strict=True)])
    columns.append(_author_reasons(asked, owners, rows))
    columns.append(_category_reasons(queries, asked, owners, rows))
    if lifted is not None and lifted.any():
        columns.append(_resembled_picks(space, queries, len(asked), owners, rows, lifted))
    reasons = [tuple(filter(None, found)) for found in zip(*columns, strict=True)]
    for at in [at for at, found in enumerate(reasons) if not found]:  # none expected: every pick has evidence
        reasons[at] = _general_reason(asked[owners[at]])
    return reasons


def _resembled_picks(
    space: Space, queries: Queries, n_owners: int, owners: np.ndarray, rows: np.ndarray, lifted: np.ndarray
) -> list[str | None]:
    """ "close to: <title>" for each lifted pick: the most similar pick of the same digest that has
    evidence of its own (a digest with lifted picks always has one)."""
    own = ~lifted
    bounds = np.searchsorted(owners[own], np.arange(n_owners + 1))
    references = _padded(np.split(rows[own], bounds[1:-1]))[owners[lifted]]
    at = np.flatnonzero(lifted)
    similarities = np.where(references >= 0, space.sims[np.maximum(references, 0), rows[at, None]], -np.inf)
    nearest = np.take_along_axis(references, similarities.argmax(axis=1)[:, None], axis=1).ravel()
    texts: list[str | None] = [None] * len(rows)
    for position, row in zip(at.tolist(), nearest.tolist(), strict=True):
        texts[position] = queries.reference_reason("close to", row) if row >= 0 else None
    return texts


def keyword_matches(
    queries: Queries, asked: Sequence[ProfileQuery], owners: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """What brought each pick in words: pick × the owner's keywords in the profile's order, the keyword's
    number (into `queries.terms`) where it occurs in the paper, else -1."""
    keywords = _padded([query.keyword_ids for query in asked])[owners]  # pick × the owner's keywords, -1 padded
    found = keywords >= 0
    found[found] = queries.occurs(keywords[found], np.broadcast_to(rows[:, None], keywords.shape)[found])
    return np.where(found, keywords, -1)


def _matched_keywords(queries: Queries, keywords: np.ndarray) -> list[str | None]:
    """ "matched: a, b, c": the keywords that occur in the paper (`keyword_matches`), in the profile's order."""
    found = keywords >= 0
    ranks = np.cumsum(found, axis=1)
    shown = found & (ranks <= MATCHED_SHOWN)
    # Left-aligned: column j holds each pick's (j+1)-th match.
    lists = np.zeros((len(keywords), MATCHED_SHOWN), dtype=np.int64)
    picks, columns = np.nonzero(shown)
    lists[picks, ranks[picks, columns] - 1] = keywords[picks, columns]
    counts = np.minimum(ranks[:, -1], MATCHED_SHOWN) if keywords.shape[1] else np.zeros(len(keywords), dtype=np.int64)
    terms = queries.term_array
    texts = np.full(len(keywords), None, dtype=object)
    for count in range(1, MATCHED_SHOWN + 1):
        at = np.flatnonzero(counts == count)
        named = zip(*(terms[lists[at, column]] for column in range(count)), strict=True)
        texts[at] = ["matched: " + ", ".join(words) for words in named]
    return texts.tolist()


def _nearest_references(
    space: Space,
    queries: Queries,
    asked: Sequence[ProfileQuery],
    owners: np.ndarray,
    rows: np.ndarray,
    label: str,
    level: float,
) -> tuple[list[str | None], list[bool]]:
    """For each pick, "<label>: <title>" of the owner's nearest seed (or liked) paper, and whether it is close."""
    liked = label == "you liked"
    references = _padded([query.liked_rows if liked else query.seed_rows for query in asked])[owners]
    if not references.size:
        return [None] * len(rows), [False] * len(rows)
    similarities = np.where(references >= 0, space.sims[np.maximum(references, 0), rows[:, None]], -np.inf)
    nearest = np.take_along_axis(references, similarities.argmax(axis=1)[:, None], axis=1).ravel()
    distinct, which = np.unique(nearest, return_inverse=True)
    texts = [queries.reference_reason(label, row) if row >= 0 else None for row in distinct.tolist()]
    close = similarities.max(axis=1) >= level
    return [texts[at] for at in which.tolist()], close.tolist()


def _author_reasons(asked: Sequence[ProfileQuery], owners: np.ndarray, rows: np.ndarray) -> list[str | None]:
    reasons: list[str | None] = [None] * len(rows)
    for at, owner, row in _picks_of(asked, owners, rows, lambda query: bool(query.authors)):
        name = asked[owner].authors.get(row)
        reasons[at] = None if name is None else f"by {name}"
    return reasons


def _category_reasons(
    queries: Queries, asked: Sequence[ProfileQuery], owners: np.ndarray, rows: np.ndarray
) -> list[str | None]:
    reasons: list[str | None] = [None] * len(rows)
    for at, owner, row in _picks_of(asked, owners, rows, lambda query: bool(query.profile.categories)):
        reasons[at] = queries.category_reason(asked[owner].profile.categories, row)
    return reasons


def _general_reason(query: ProfileQuery) -> tuple[str]:
    return ("fits your ratings",) if len(query.liked_rows) >= MODEL_MIN_LIKES else ("related to your interests",)


def _picks_of(
    asked: Sequence[ProfileQuery], owners: np.ndarray, rows: np.ndarray, wanted: Callable[[ProfileQuery], bool]
) -> Iterator[tuple[int, int, int]]:
    """(position, owner, row) of the picks whose owner is `wanted`."""
    chosen = np.array([wanted(query) for query in asked], dtype=bool)
    positions = np.flatnonzero(chosen[owners]) if len(asked) else np.zeros(0, dtype=np.int64)
    return zip(positions.tolist(), owners[positions].tolist(), rows[positions].tolist(), strict=True)


def _padded(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Ragged int arrays as one matrix, -1 padded on the right."""
    lengths = np.array([len(array) for array in arrays], dtype=np.int64)
    matrix = np.full((len(arrays), int(lengths.max(initial=0))), -1, dtype=np.int64)
    matrix[np.arange(matrix.shape[1]) < lengths[:, None]] = np.concatenate([np.zeros(0, np.int64), *arrays])
    return matrix
