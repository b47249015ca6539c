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

from collections.abc import Callable, Sequence

import numpy as np

from digestd.ranking.queries import ProfileQuery, Queries
from digestd.ranking.scoring import EVIDENCE, MODEL_MIN_LIKES, Space

MATCHED_SHOWN = 3  # keywords named in "matched: ..."


def reason_table(
    space: Space,
    queries: Queries,
    asked: Sequence[ProfileQuery],
    owners: np.ndarray,
    rows: np.ndarray,
    lifted: np.ndarray | None = None,
    reference_level: float = EVIDENCE.reference,
    matched: np.ndarray | None = None,
) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Reasons (at least one each) for picks given as (index into `asked`, window row) pairs, in
    rank order per owner, as distinct reason tuples and, per pick, the number of its tuple (a caller
    that reorders the picks gathers once); `lifted` marks the picks admitted by feedback alone;
    `matched`: their `keyword_matches`, when the caller has them already."""
    if not len(rows):
        return [], np.zeros(0, dtype=np.int64)
    if matched is None:
        matched = keyword_matches(queries, asked, owners, rows)
    # One object array per kind of reason, None where it does not apply, in the order they are told.
    columns = [_matched_keywords(queries, matched)]
    for label in ("close to your seed paper", "you liked"):
        columns.append(_nearest_references(space, queries, asked, owners, rows, label, reference_level))
    columns.append(_author_reasons(asked, owners, rows))
    columns.append(_category_reasons(queries, asked, owners, rows))
    if lifted is not None and lifted.any():
        columns.append(_resembled_picks(space, queries, len(asked), owners, rows, lifted))
    return _combine(columns, asked, owners)


def _combine(
    columns: list[np.ndarray], asked: Sequence[ProfileQuery], owners: np.ndarray
) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Each pick's reasons as a tuple of its columns that apply. Picks are grouped by which columns
    apply, so that `zip` builds each group's tuples in C rather than a filter per pick."""
    kinds = np.zeros(len(owners), dtype=np.int64)
    for bit, column in enumerate(columns):
        kinds |= column.astype(bool).astype(np.int64) << bit  # None (and "") are false, as for `filter`
    order = np.argsort(kinds, kind="stable")
    starts = np.flatnonzero(np.r_[True, kinds[order][1:] != kinds[order][:-1]])
    table: list[tuple[str, ...]] = []
    for start, end in zip(starts.tolist(), [*starts[1:].tolist(), len(order)], strict=True):
        at = order[start:end]
        kind = int(kinds[at[0]])
        if kind:
            table.extend(
                zip(*(column[at].tolist() for bit, column in enumerate(columns) if kind >> bit & 1), strict=True)
            )
        else:  # none expected: every pick has evidence
            table.extend(_general_reason(asked[owner]) for owner in owners[at].tolist())
    which = np.empty(len(order), dtype=np.int64)
    which[order] = np.arange(len(order))
    return table, which


def _resembled_picks(
    space: Space, queries: Queries, n_owners: int, owners: np.ndarray, rows: np.ndarray, lifted: np.ndarray
) -> np.ndarray:
    """ "close to: <title>" for each lifted pick: the most similar pick of the same digest that has
    evidence of its own (a digest with lifted picks always has one)."""
    own = ~lifted
    bounds = np.searchsorted(owners[own], np.arange(n_owners + 1))
    references = _padded(np.split(rows[own], bounds[1:-1]))[owners[lifted]]
    at = np.flatnonzero(lifted)
    similarities = np.where(references >= 0, space.sims[np.maximum(references, 0), rows[at, None]], -np.inf)
    nearest = np.take_along_axis(references, similarities.argmax(axis=1)[:, None], axis=1).ravel()
    texts = np.full(len(rows), None, dtype=object)
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


def _matched_keywords(queries: Queries, keywords: np.ndarray) -> np.ndarray:
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
    return texts


def _nearest_references(
    space: Space,
    queries: Queries,
    asked: Sequence[ProfileQuery],
    owners: np.ndarray,
    rows: np.ndarray,
    label: str,
    level: float,
) -> np.ndarray:
    """For each pick, "<label>: <title>" of the owner's nearest seed (or liked) paper when it is as
    close as `level`, else None."""
    liked = label == "you liked"
    references = _padded([query.liked_rows if liked else query.seed_rows for query in asked])[owners]
    if not references.size:
        return np.full(len(rows), None, dtype=object)
    similarities = np.where(references >= 0, space.sims[np.maximum(references, 0), rows[:, None]], -np.inf)
    nearest = np.take_along_axis(references, similarities.argmax(axis=1)[:, None], axis=1).ravel()
    close = similarities.max(axis=1) >= level
    texts = queries.reference_texts(label)
    told = nearest[close]  # (never -1: a pick with no reference is not close)
    missing = np.unique(told[~texts[told].astype(bool)])
    texts[missing] = [queries.reference_reason(label, row) for row in missing.tolist()]
    reasons = np.full(len(rows), None, dtype=object)
    reasons[close] = texts[told]
    return reasons


def _author_reasons(asked: Sequence[ProfileQuery], owners: np.ndarray, rows: np.ndarray) -> np.ndarray:
    reasons = np.full(len(rows), None, dtype=object)
    at, owners, rows = _picks_of(asked, owners, rows, lambda query: bool(query.authors))
    if len(at):
        names = [asked[owner].authors.get(row) for owner, row in zip(owners.tolist(), rows.tolist(), strict=True)]
        told = {name: f"by {name}" for name in set(names) if name is not None}  # one string per author
        reasons[at] = [told.get(name) if name is not None else None for name in names]
    return reasons


def _category_reasons(
    queries: Queries, asked: Sequence[ProfileQuery], owners: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """ "in your category <c>": c the paper's first category that is, or is in the archive of, one the
    owner chose, compared as numbers (`Queries.category_table`) for all the chunk's picks at once."""
    reasons = np.full(len(rows), None, dtype=object)
    at, owners, rows = _picks_of(asked, owners, rows, lambda query: bool(query.profile.categories))
    if not len(at):
        return reasons
    table = queries.category_table
    chooser, wanted = np.unique(owners, return_inverse=True)
    keys = table.keys
    chosen = _padded(
        [
            np.array([keys.get(c.lower(), -2) for c in asked[owner].profile.categories], dtype=np.int64)
            for owner in chooser.tolist()
        ]
    )[wanted.ravel()][:, None, :]  # pick × 1 × the owner's keys (-2: in no paper, -1: padding)
    own, archive = table.own[rows][:, :, None], table.archive[rows][:, :, None]
    hit = (((own == chosen) | (archive == chosen)) & (chosen >= 0)).any(axis=2)  # pick × category slot
    slot = hit.argmax(axis=1)
    found = np.flatnonzero(hit[np.arange(len(slot)), slot])
    reasons[at[found]] = table.reasons[rows[found], slot[found]]
    return reasons


def _general_reason(query: ProfileQuery) -> tuple[str]:
    return ("fits your ratings",) if len(query.liked_rows) >= MODEL_MIN_LIKES else ("related to your interests",)


def _picks_of(
    asked: Sequence[ProfileQuery], owners: np.ndarray, rows: np.ndarray, wanted: Callable[[ProfileQuery], bool]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, owners and rows of the picks whose owner is `wanted`."""
    chosen = np.array([wanted(query) for query in asked], dtype=bool)
    positions = np.flatnonzero(chosen[owners]) if len(asked) else np.zeros(0, dtype=np.int64)
    return positions, owners[positions], rows[positions]


def _padded(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Ragged int arrays as one matrix, -1 padded on the right."""
    lengths = np.array([len(array) for array in arrays], dtype=np.int64)
    matrix = np.full((len(arrays), int(lengths.max(initial=0))), -1, dtype=np.int64)
    matrix[np.arange(matrix.shape[1]) < lengths[:, None]] = np.concatenate([np.zeros(0, np.int64), *arrays])
    return matrix
