"""Score the window's papers for many subscribers at once, filter them and pick a diverse top.

One TF-IDF space per run (`build_space`), shared by every subscriber. A chunk of profiles
becomes a few sparse matrices (keyword weights, seed/liked/disliked rows, boosts, masks)
and the scores are matrix products, never a Python loop over papers:

    score = keyword match                  (BM25 of the keywords' words, as a fraction of the
                                            best possible score: 0 to 1)
          + seed similarity                (mean cosine to seeds and liked papers less 1.5 × the paper's
                                            mean cosine to the other papers of the window: closeness
                                            beyond what any paper of the week shares with it, as
                                            Rocchio's negative term, so a generic paper does not ride
                                            on the common words every seed has; or, when more, the
                                            cosine to the nearest one less 0.35, so that a paper close
                                            to one corner of a large library is not averaged away)
          + 0.75 × feedback                (profiles with keywords: mean similarity to the 10 best
                                            papers so far, Rocchio pseudo-relevance feedback, so that
                                            papers which use other words for the same topic come up
                                            too; seeds are already whole papers, and feedback on them
                                            only drifts, measured in `bench/quality.py`)
          − 0.5 × disliked similarity      (the same measure as seed similarity)
          + 0.3 × model                    (logistic regression on ratings, from 5 likes on)
          + 0.5 if by a followed author + 0.1 if in a chosen category
          + a tiny popularity term         (breaks ties only)

A paper may be sent only on evidence of its own, on absolute levels (`Evidence`, calibrated in
`bench/quality.py`), never relative to the week: one of the keywords occurs in it (as a phrase,
or its plural/singular twin) with enough weight, it is close enough to a seed or liked paper, a
followed author wrote it, or it is in a chosen category and has some text evidence too. Feedback
(from the best papers *with* evidence) reorders, and lifts papers without evidence that are
close to those, but never more than a third of a digest, and nothing when nothing qualified.

Excluded words, papers already sent and (when asked) other categories are masked out;
then `min_score` (and a score above 0), and maximal marginal relevance over the best 3 × max_papers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from digestd.ranking.queries import ProfileQuery, Queries
from digestd.ranking.trending import add_trend, has_interests

log = logging.getLogger(__name__)

FEEDBACK_WEIGHT = 0.75  # Rocchio's classic beta
FEEDBACK_DOCS = 10
FEEDBACK_BLOCK = 256  # papers per block of the feedback product
COMMON_WEIGHT = 1.5  # of a paper's mean similarity to the window, taken off its similarity to references
NEAREST_MARGIN = 0.35  # a paper's reference similarity is at least its cosine to the nearest reference less this
DISLIKE_WEIGHT = 0.5
MODEL_WEIGHT = 0.3
MODEL_MIN_LIKES = 5
AUTHOR_BOOST = 0.5
CATEGORY_BOOST = 0.1
NOISE_FLOOR = 0.0  # a score of 0 or less: no closer than any paper of the week (the evidence is the absolute bar)
# A pick scoring under this share of the subscriber's best paper in the same window is a
# weak echo of it (one shared word), not a match: it is left out rather than fill the digest.
RELATIVE_FLOOR = 0.15
POPULARITY_WEIGHT = 1e-4
MMR_LAMBDA = 0.7  # relevance vs. novelty, on relevance scaled to the subscriber's best paper
DUPLICATE_SIMILARITY = 0.6  # cosine above which a paper is a near-duplicate of a pick
CANDIDATES_PER_PICK = 3
LATENT_DIMENSIONS = 100
# With a sentence encoder (`build_space(vectors=...)`, chosen on `bench/quality.py`'s tuning windows):
ENCODER_SHARE = 0.5  # of `Space.sims` that is the encoder's cosine, the rest TF-IDF and latent as without
ENCODER_COMMON_WEIGHT = 1.0  # COMMON_WEIGHT in the mixed space, whose cosines between unrelated papers are higher
QUERY_WEIGHT = 2.0  # of the cosine between a paper and the keywords read as one query


@dataclass(frozen=True, eq=False)
class Space:
    """The run's TF-IDF space: window papers are rows 0..n_window-1, referenced papers follow.

    `sims` (what scores use) is the mean of the TF-IDF cosine and the cosine in a
    100-dimension latent semantic space, which relates papers on one topic that use
    different words; with a sentence encoder, half of it is the encoder's cosine instead
    (`ENCODER_SHARE`). `text_sims` (the TF-IDF cosine alone) tells near-duplicates apart.
    """

    vectorizer: TfidfVectorizer
    matrix: sparse.csr_matrix
    n_window: int
    sims: np.ndarray  # every row × every window paper, float32
    text_sims: np.ndarray  # window × window
    points: np.ndarray  # unit rows in the latent space, window papers only
    common: np.ndarray  # per window paper, its mean `sims` to the window's papers: how generic it is
    encoded: np.ndarray | None = None  # the encoder's unit vectors of the window papers, when there is one

    @property
    def common_weight(self) -> float:
        """How much of `common` seed similarity discounts (less in the encoder's mixed space)."""
        return COMMON_WEIGHT if self.encoded is None else ENCODER_COMMON_WEIGHT


def build_space(
    window_texts: Sequence[str], referenced_texts: Sequence[str], vectors: np.ndarray | None = None
) -> Space:
    """Fit TF-IDF (unigrams+bigrams, sublinear tf, English stop words) and the paper-paper cosines.

    The vocabulary and IDF come from the window: what sets this period's papers apart is
    what matters, and fitting on thousands of older seed papers would double the run time.
    Referenced papers are placed in that space with `transform`. `vectors`, a sentence encoder's
    unit rows for every paper (window papers first), are mixed into the similarities.
    """
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, stop_words="english", strip_accents="unicode", dtype=np.float32
    )
    n_window, n_rows = len(window_texts), len(window_texts) + len(referenced_texts)
    try:
        parts = [vectorizer.fit_transform(window_texts)]
    except ValueError:  # no words at all, or only stop words
        parts = [sparse.csr_matrix((n_rows, 0), dtype=np.float32)]
    if referenced_texts and parts[0].shape[1]:
        parts.append(vectorizer.transform(referenced_texts))
    matrix = sparse.vstack(parts, format="csr", dtype=np.float32)
    window_t = matrix[:n_window].T.tocsc()
    text = np.zeros((n_rows, n_window), dtype=np.float32)
    for start in range(0, n_rows, 2000):  # bounded memory for the sparse product
        text[start : start + 2000] = (matrix[start : start + 2000] @ window_t).toarray()
    text_sims = text[:n_window].copy()
    latent = _latent_points(matrix, n_window)
    sims = text  # averaged in place, block by block: no full-size temporaries
    rows = None if vectors is None else np.ascontiguousarray(vectors, dtype=np.float32)
    for start in range(0, n_rows, 2000):
        block = sims[start : start + 2000]
        block += latent[start : start + 2000] @ latent[:n_window].T
        block *= 0.5
        if rows is not None:
            block *= np.float32(1 - ENCODER_SHARE)
            block += np.float32(ENCODER_SHARE) * (rows[start : start + 2000] @ rows[:n_window].T)
    # Each paper's mean similarity to the others (itself left out: that would weigh in small windows).
    total = sims[:n_window].sum(axis=0, dtype=np.float64) - np.diagonal(sims[:n_window])
    common = (total / max(n_window - 1, 1)).astype(np.float32)
    encoded = None if rows is None else rows[:n_window]
    return Space(vectorizer, matrix, n_window, sims, text_sims, latent[:n_window], common, encoded)


def _latent_points(matrix: sparse.csr_matrix, n_window: int) -> np.ndarray:
    """Unit rows in an SVD of the window's terms that occur in at least two window papers."""
    frequent = np.flatnonzero(np.asarray((matrix[:n_window] > 0).sum(axis=0)).ravel() >= 2)
    dimensions = min(LATENT_DIMENSIONS, n_window - 1, len(frequent) - 1)
    if dimensions < 2:  # too few papers for a latent space: fall back to the terms themselves
        return np.asarray(normalize(matrix).toarray() if matrix.shape[1] else matrix.toarray(), dtype=np.float32)
    svd = TruncatedSVD(n_components=dimensions, random_state=0).fit(matrix[:n_window, frequent])
    points = svd.transform(matrix[:, frequent])
    norms = np.linalg.norm(points, axis=1)
    points /= np.maximum(norms, 1e-12)[:, None]
    # A referenced paper that lies mostly outside the window's topics (little of it in the latent
    # space) would, made a unit vector, look as close to some window paper as an on-topic one:
    # it keeps its share of the typical window paper's length instead.
    typical = float(np.median(norms[:n_window])) or 1.0
    points[n_window:] *= np.minimum(1.0, norms[n_window:] / typical)[:, None]
    return np.asarray(points, dtype=np.float32)


@dataclass(frozen=True)
class Evidence:
    """The absolute levels at which a paper has evidence of its own for a profile (see the module
    docstring). Calibrated with `bench/quality.py` on windows kept apart from the ones it reports."""

    keyword: float = 0.0  # a keyword occurs, its words weighing this share of their best BM25
    reference: float = 0.3  # similarity to the nearest seed or liked paper
    lift: float = 0.4  # mean similarity to the best papers with evidence, for a paper without
    lift_share: float = 1 / 3  # the most of a digest (at every length) that may be lifted


EVIDENCE = Evidence()
# The same standard in the mixed space of a sentence encoder (`build_space(vectors=...)`), where any
# two papers are closer: calibrated on the same tuning windows with the encoder's vectors.
ENCODER_EVIDENCE = Evidence(keyword=0.5, reference=0.35, lift=0.5)
CATEGORY_TEXT_SHARE = 0.5  # of `Evidence.reference`: the closeness that, with a chosen category, is evidence


def score_chunk(
    space: Space,
    queries: Queries,
    chunk: Sequence[ProfileQuery],
    popularity: np.ndarray,
    trend: np.ndarray | None = None,
    evidence: Evidence = EVIDENCE,
    admit: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (len(chunk) × n_window; -inf where a paper may not be sent) and which papers are
    admitted only as lifted by feedback (no evidence of their own). `trend` (see `trending`)
    counts for the profiles that asked for trending papers. `admit=False` leaves every paper its
    score, with or without evidence and whatever the masks: the ranking alone, for benchmarks."""
    asking = queries.asking(chunk)
    scores = queries.keyword_scores(chunk, asking)
    strong, occurs = queries.keyword_evidence(chunk, asking)
    nearest = np.zeros(scores.shape, dtype=np.float32)
    _add_similarity(scores, space, [query.positive_rows for query in chunk], 1.0, nearest)
    _add_query_similarity(scores, space, chunk)
    authors = _cells([query.author_rows for query in chunk])
    categories = _cells([query.category_rows for query in chunk])
    qualified = _qualified(chunk, strong, occurs, nearest, authors, categories, evidence)
    del strong, occurs, nearest
    feedback = _feedback(np.where(qualified, scores, -np.inf), space.sims[: space.n_window])
    lifted = feedback >= evidence.lift
    lifted &= ~qualified
    weights = np.array([FEEDBACK_WEIGHT if len(query.keyword_ids) else 0.0 for query in chunk], dtype=np.float32)
    feedback *= weights[:, None]
    scores += feedback
    del feedback
    _add_similarity(scores, space, [query.negative_rows for query in chunk], -DISLIKE_WEIGHT)
    for row, query in enumerate(chunk):
        if len(query.liked_rows) >= MODEL_MIN_LIKES:
            scores[row] += MODEL_WEIGHT * _rating_model(space, query)
    scores[authors] += AUTHOR_BOOST  # once per paper, however many followed authors wrote it
    scores[categories] += CATEGORY_BOOST
    if popularity.any():
        scores += np.where(scores > 0, POPULARITY_WEIGHT * popularity, 0).astype(np.float32)
    if trend is not None:
        add_trend(scores, [query.profile for query in chunk], trend)
    if not admit:
        return scores, lifted
    qualified |= lifted
    np.putmask(scores, ~qualified, -np.inf)
    _mask(scores, chunk)
    lifted &= np.isfinite(scores)
    return scores, lifted


def _qualified(
    chunk: Sequence[ProfileQuery],
    strong: np.ndarray,
    occurs: np.ndarray,
    nearest: np.ndarray,
    authors: tuple[np.ndarray, np.ndarray],
    categories: tuple[np.ndarray, np.ndarray],
    evidence: Evidence,
) -> np.ndarray:
    """Papers with evidence of their own: a strong keyword match, a close seed or liked paper,
    a followed author (`authors`: their cells), or a chosen category (`categories`: their cells)
    with some text evidence (a keyword that occurs, or half the closeness) unless the profile asks
    for categories alone."""
    qualified = nearest >= evidence.reference
    qualified |= strong
    qualified[authors] = True
    owners, columns = categories
    if len(owners):
        needs_text = np.array([bool(len(query.keyword_ids) or len(query.positive_rows)) for query in chunk])[owners]
        cells = owners[needs_text], columns[needs_text]
        near = CATEGORY_TEXT_SHARE * evidence.reference
        qualified[cells] |= occurs[cells] | (nearest[cells] >= near)
        qualified[owners[~needs_text], columns[~needs_text]] = True
    # Trending alone: the trend is the evidence, every paper may compete.
    alone = [row for row, query in enumerate(chunk) if query.profile.trending and not has_interests(query.profile)]
    qualified[alone] = True
    return qualified


def _add_similarity(
    scores: np.ndarray, space: Space, rows: list[np.ndarray], weight: float, nearest: np.ndarray | None = None
) -> None:
    """Add `weight` × (the mean cosine to each profile's references less COMMON_WEIGHT × the paper's
    mean cosine to the window, or the cosine to the nearest less NEAREST_MARGIN when more) to each
    window paper; `nearest`, when given, gets the cosine to the nearest reference (the evidence)."""
    counts = np.array([len(r) for r in rows])
    if not counts.any():
        return
    sims = space.sims
    weights = np.repeat(1 / np.maximum(counts, 1), counts).astype(np.float32)
    mean = sparse.csr_matrix((weights, np.concatenate(rows), np.r_[0, np.cumsum(counts)]), (len(rows), sims.shape[0]))
    holders = np.flatnonzero(counts)
    closest = sims[[rows[i][0] for i in holders]]
    for slot in range(1, counts.max()):  # a running max over the k-th reference of every profile
        has = np.flatnonzero(counts[holders] > slot)
        closest[has] = np.maximum(closest[has], sims[[rows[holders[j]][slot] for j in has]])
    if nearest is not None:
        nearest[holders] = closest
    every = len(holders) == len(rows)  # the usual case: plain in-place arithmetic, no gathered rows
    similarity = np.asarray((mean if every else mean[holders]) @ sims, dtype=np.float32)
    similarity -= np.float32(space.common_weight) * space.common
    closest -= np.float32(NEAREST_MARGIN)
    np.maximum(similarity, closest, out=similarity)
    if weight != 1:
        similarity *= np.float32(weight)
    if every:
        scores += similarity
    else:
        scores[holders] += similarity


def _add_query_similarity(scores: np.ndarray, space: Space, chunk: Sequence[ProfileQuery]) -> None:
    """With an encoder: add QUERY_WEIGHT × the cosine between each paper and the profile's keywords
    read as one query, less its mean over the window (papers on the topic in other words; a score,
    not evidence). Less the mean: a share of every paper's score, it would lift weak keyword matches
    over the relative floor, which compares a paper with the profile's best."""
    if space.encoded is None:
        return
    asked = [(row, query.query_vector) for row, query in enumerate(chunk) if query.query_vector is not None]
    if asked:
        rows = [row for row, _ in asked]
        cosines = np.stack([vector for _, vector in asked]).astype(np.float32) @ space.encoded.T
        cosines -= cosines.mean(axis=1, keepdims=True)
        scores[rows] += np.float32(QUERY_WEIGHT) * cosines


def _feedback(scores: np.ndarray, window_sims: np.ndarray) -> np.ndarray:
    """Mean cosine to each row's best `FEEDBACK_DOCS` papers (rows with no signal get none)."""
    m = min(FEEDBACK_DOCS, scores.shape[1])
    if m == 0:
        return np.zeros_like(scores)
    top = np.argpartition(-scores, m - 1, axis=1)[:, :m]
    chosen = np.take_along_axis(scores, top, axis=1) > 0
    weights = chosen / np.maximum(chosen.sum(axis=1, keepdims=True), 1)
    matrix = sparse.csr_matrix((weights.ravel(), top.ravel(), np.arange(0, top.size + 1, m)), shape=scores.shape)
    feedback = np.empty(scores.shape, dtype=np.float32)
    # Column blocks of the (float64) product keep the rows it reads in cache: twice as fast, same sums.
    for start in range(0, scores.shape[1], FEEDBACK_BLOCK):
        block = window_sims[:, start : start + FEEDBACK_BLOCK].astype(np.float64)
        feedback[:, start : start + FEEDBACK_BLOCK] = matrix @ block
    return feedback


def _rating_model(space: Space, query: ProfileQuery) -> np.ndarray:
    """P(liked) for every window paper: liked and seeds against disliked and background papers."""
    positives = np.union1d(query.liked_rows, query.positive_rows)
    rng = np.random.default_rng(0)  # fixed: the same input gives the same digest
    background = rng.permutation(space.n_window)[:200]
    negatives = np.union1d(query.negative_rows, np.setdiff1d(background, positives))
    features = space.matrix[np.r_[positives, negatives]]
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    model = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear", max_iter=1000)
    model.fit(features, labels)
    return model.predict_proba(space.matrix[: space.n_window])[:, 1].astype(np.float32)


def _cells(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(profile, paper) coordinates of each profile's rows, for fancy indexing into a chunk."""
    owners = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    return owners, (np.concatenate(rows) if len(owners) else owners)


def _mask(scores: np.ndarray, chunk: Sequence[ProfileQuery]) -> None:
    """Hard filters: excluded words, already sent, category filter, no signal, below min_score,
    and far below the subscriber's best paper."""
    floors = np.array([max(query.min_score, NOISE_FLOOR) for query in chunk], dtype=np.float32)[:, None]
    np.putmask(scores, scores <= floors, -np.inf)
    scores[_cells([query.blocked_rows for query in chunk])] = -np.inf
    for row, query in enumerate(chunk):
        if query.only_rows is not None:
            keep = scores[row, query.only_rows]
            scores[row] = -np.inf
            scores[row, query.only_rows] = keep
    if scores.size:
        np.putmask(scores, scores < RELATIVE_FLOOR * scores.max(axis=1, keepdims=True), -np.inf)


def select_picks(
    scores: np.ndarray,
    text_sims: np.ndarray,
    limits: Sequence[int],
    lifted: np.ndarray | None = None,
    lift_share: float = EVIDENCE.lift_share,
) -> np.ndarray:
    """Window rows each profile gets, in score order, padded with -1: MMR over its best 3 × limit.

    Runs for the whole chunk at once; a candidate too close to a pick (near-duplicate)
    is never taken, and lifted papers (`lifted`) never make more than `lift_share` of the picks.
    """
    rows, n = scores.shape
    width = min(n, CANDIDATES_PER_PICK * max(limits, default=0))
    if width == 0:
        return np.full((rows, 0), -1, dtype=np.int64)
    candidates = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    relevance = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-relevance, axis=1, kind="stable")
    candidates = np.take_along_axis(candidates, order, axis=1)
    relevance = np.take_along_axis(relevance, order, axis=1)
    valid = np.isfinite(relevance)
    best = np.where(valid[:, :1], relevance[:, :1], 1.0)
    relevance = np.where(valid, relevance / np.maximum(best, 1e-9), -np.inf)
    is_lifted = np.zeros(candidates.shape, dtype=bool) if lifted is None else np.take_along_axis(lifted, candidates, 1)
    taken = _greedy_mmr(relevance, candidates, text_sims, np.asarray(limits), is_lifted, lift_share)
    # Columns are in score order, so sorting the taken ones gives the picks in score order.
    columns = np.sort(np.where(taken >= 0, taken, width), axis=1)
    picks = np.take_along_axis(np.c_[candidates, np.full(rows, -1)], columns, axis=1)
    return picks


def _greedy_mmr(
    relevance: np.ndarray,
    candidates: np.ndarray,
    text_sims: np.ndarray,
    limits: np.ndarray,
    lifted: np.ndarray,
    lift_share: float,
) -> np.ndarray:
    """Candidate columns picked per row in pick order, -1 where nothing (more) qualifies."""
    rows, width = relevance.shape
    steps = int(min(limits.max(), width))
    chosen = np.full((rows, steps), -1, dtype=np.int64)
    weighted = MMR_LAMBDA * relevance
    closest = np.zeros((rows, width), dtype=np.float32)  # highest similarity to a pick so far
    open_ = np.isfinite(relevance)  # neither taken nor a near-duplicate of a pick
    # Rows still picking: a row that takes nothing at one step never takes anything again,
    # so each step works on fewer rows (most digests stop at 10 or 20 of the 30 steps).
    active = np.arange(rows)
    lifted_taken = np.zeros(rows, dtype=np.int64)
    flat_sims, n = text_sims.reshape(-1), text_sims.shape[1]  # one flat gather beats a 2-D fancy index
    for step in range(steps):
        active = active[step < limits[active]]
        # A lifted paper only while lifted picks stay within their share of the digest so far.
        may_lift = lifted_taken[active] + 1 <= lift_share * (step + 1) + 1e-9
        allowed = open_[active] & (may_lift[:, None] | ~lifted[active])
        gain = np.where(allowed, weighted[active] - (1 - MMR_LAMBDA) * closest[active], -np.inf)
        column = np.argmax(gain, axis=1)
        taking = np.isfinite(gain[np.arange(len(active)), column])
        active, column = active[taking], column[taking]
        if not len(active):
            break
        chosen[active, step] = column
        lifted_taken[active] += lifted[active, column]
        open_[active, column] = False
        picked = candidates[active, column]
        near = np.maximum(closest[active], np.take(flat_sims, picked[:, None] * n + candidates[active]))
        closest[active] = near
        open_[active] &= near < DUPLICATE_SIMILARITY
    return chosen
