"""Profiles and papers as rows and columns of the run's TF-IDF space.

`PaperIndex` is built once per window (tokens for exclusions, authors, categories,
popularity); `Queries` once per run over all profiles (one vector and one match list per
distinct keyword, one row set per distinct excluded phrase); `ProfileQuery` is one
profile's share, as arrays of row numbers that `ranking` turns into matrices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfVectorizer

from digestd.ranking.profiles import author_key, compile_phrase, fold_text, keyword_variants, phrase_tokens
from digestd.records import PaperRecord, Profile

_NO_ROWS = np.zeros(0, dtype=np.int64)
BM25_K1, BM25_B = 1.2, 0.75


@dataclass(frozen=True, eq=False)
class PaperIndex:
    """Lookups over the window's papers, by window row."""

    papers: tuple[PaperRecord, ...]
    row_of: Mapping[str, int]  # window and referenced papers → row in the space
    titles: tuple[str, ...]  # by space row
    tokens: Mapping[str, int]  # folded word → column of `token_matrix`
    token_matrix: sparse.csc_matrix  # papers × words, how often each word occurs
    bm25: sparse.csr_matrix  # papers × words, the BM25 weight of each word in each paper
    bm25_by_word: sparse.csr_matrix  # the same, words × papers
    bm25_ideal: np.ndarray  # per word, the highest BM25 weight a paper could give it
    authors: Mapping[tuple[str, str], np.ndarray]  # (surname, first initial or "") and (surname, "*") → rows
    categories: Mapping[str, np.ndarray]  # category or archive ("cs", "astro-ph") → rows
    popularity: np.ndarray  # log popularity scaled to 0..1


def index_papers(papers: Sequence[PaperRecord], referenced: Sequence[PaperRecord]) -> PaperIndex:
    """Build the lookups once per window."""
    counter = CountVectorizer(token_pattern=r"(?u)\w+", strip_accents="unicode", dtype=np.float32)
    texts = [paper.text for paper in papers]
    try:
        token_matrix = counter.fit_transform(texts).tocsc()
        tokens = {str(word): int(column) for word, column in counter.vocabulary_.items()}
    except ValueError:  # an empty window
        token_matrix, tokens = sparse.csc_matrix((len(papers), 0), dtype=np.float32), {}
    authors: dict[tuple[str, str], list[int]] = {}
    categories: dict[str, list[int]] = {}
    for row, paper in enumerate(papers):
        for name in paper.authors:
            surname, initials = author_key(name)
            authors.setdefault((surname, initials[:1]), []).append(row)
            authors.setdefault((surname, "*"), []).append(row)
        for category in {*paper.categories, *(c.split(".")[0] for c in paper.categories)}:
            categories.setdefault(category.lower(), []).append(row)
    bm25 = _bm25_weights(token_matrix)
    popularity = np.log1p(np.array([max(paper.popularity or 0, 0) for paper in papers], dtype=np.float32))
    return PaperIndex(
        papers=tuple(papers),
        row_of={paper.id: row for row, paper in enumerate([*papers, *referenced])},
        titles=tuple(paper.title for paper in [*papers, *referenced]),
        tokens=tokens,
        token_matrix=token_matrix,
        bm25=bm25,
        bm25_by_word=bm25.T.tocsr(),
        bm25_ideal=_bm25_ideal(token_matrix),
        authors={key: np.unique(rows) for key, rows in authors.items()},
        categories={name: np.array(rows) for name, rows in categories.items()},
        popularity=popularity / max(float(popularity.max(initial=0)), 1.0),
    )


def _bm25_idf(counts: sparse.csc_matrix) -> np.ndarray:
    document_frequency = np.diff(counts.indptr)
    return np.log1p((counts.shape[0] - document_frequency + 0.5) / (document_frequency + 0.5)).astype(np.float32)


def _bm25_weights(counts: sparse.csc_matrix) -> sparse.csr_matrix:
    """Okapi BM25 term weights (k1 = 1.2, b = 0.75), papers × words."""
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    cells = counts.tocoo()
    tf = cells.data
    average = max(float(lengths.mean()), 1.0) if len(lengths) else 1.0
    norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[cells.row] / average)
    weights = _bm25_idf(counts)[cells.col] * tf * (BM25_K1 + 1) / (tf + norm)
    return sparse.csr_matrix((weights.astype(np.float32), (cells.row, cells.col)), shape=counts.shape)


def _bm25_ideal(counts: sparse.csc_matrix) -> np.ndarray:
    return _bm25_idf(counts) * (BM25_K1 + 1)


@dataclass(frozen=True, eq=False)
class CategoryTable:
    """The window papers' categories as numbers (`Queries.category_table`), made once per run."""

    keys: dict[str, int]  # lower-case category or archive → number
    own: np.ndarray  # window row × category slot: the category's number, -1 past the paper's last
    archive: np.ndarray  # the same for the category's archive ("cs" of "cs.LG")
    reasons: np.ndarray  # window row × category slot: "in your category <category>"


@dataclass(frozen=True, eq=False)
class ProfileQuery:
    """One profile as row numbers (space rows for references, window rows for the rest)."""

    profile: Profile
    keyword_ids: np.ndarray  # into Queries.terms
    keyword_weights: np.ndarray
    seed_rows: np.ndarray
    liked_rows: np.ndarray
    negative_rows: np.ndarray
    authors: Mapping[int, str]  # window row → followed author (as the profile spells it)
    category_rows: np.ndarray
    blocked_rows: np.ndarray  # excluded words, papers already sent, seeds and rated papers
    only_rows: np.ndarray | None  # the category filter, when the profile asks for one
    query_vector: np.ndarray | None = None  # the encoder's vector of `Profile.keyword_query`, when there is one

    @property
    def positive_rows(self) -> np.ndarray:
        if not len(self.liked_rows):
            return self.seed_rows
        return np.union1d(self.seed_rows, self.liked_rows)

    @property
    def author_rows(self) -> np.ndarray:
        return np.array(sorted(self.authors), dtype=np.int64)

    @property
    def min_score(self) -> float:
        return self.profile.min_score


class Queries:
    """Per-run lookups over all profiles: distinct keywords as words and matches, excluded phrases as rows."""

    def __init__(
        self,
        vectorizer: TfidfVectorizer,
        window: sparse.csr_matrix,
        index: PaperIndex,
        terms: list[str],
        spellings: Mapping[str, str],
        keyword_level: float = 0.0,
        query_vectors: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.index = index
        self.query_vectors = query_vectors or {}  # `Profile.keyword_query` → the encoder's unit vector
        self.terms = terms
        self.term_array = np.array(terms, dtype=object)  # for gathering many picks' keywords at once
        # Keyed by the keyword as typed, so that no profile needs to fold its keywords again.
        number_of = {term: number for number, term in enumerate(terms)}
        self.term_id = {raw: number_of[term] for raw, term in spellings.items() if term}
        self.present = _confirmed(_keyword_presence(vectorizer, window, terms), terms, index)  # keyword × paper
        self.words = _keyword_words(index, terms)  # keyword × word, 1 for each (non stop) word of the keyword
        # Keyword × paper: the keyword occurs and its words weigh at least `keyword_level` there.
        self.evident = _strong_matches(self.present, self.words, index, keyword_level)
        self._excluded: dict[str, np.ndarray] = {}
        self._authors: dict[str, dict[int, str]] = {}
        self._categories: dict[tuple[str, ...], np.ndarray] = {}
        self._window_ids = frozenset(paper.id for paper in index.papers)
        self._reference_texts: dict[str, np.ndarray] = {}

    def keyword_scores(self, chunk: Sequence[ProfileQuery], asking: sparse.csr_matrix | None = None) -> np.ndarray:
        """BM25 of each profile's keywords (their words, each keyword weighted) against every paper,
        as a fraction of the best score a paper could get: 0 to 1. `asking`: `self.asking(chunk)`."""
        weights = (self.asking(chunk) if asking is None else asking).copy()
        weights.data = np.concatenate([query.keyword_weights for query in chunk]).astype(np.float32)
        asked = weights @ self.words  # profile × word
        ideal = np.maximum(asked @ self.index.bm25_ideal, 1e-9).astype(np.float32)
        return np.asarray((asked @ self.index.bm25_by_word).toarray() / ideal[:, None], dtype=np.float32)

    def keyword_evidence(
        self, chunk: Sequence[ProfileQuery], asking: sparse.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per profile × paper: whether one of its keywords matches strongly (evidence of its own),
        and whether one occurs at all (the textual evidence a chosen category needs)."""
        asking = self.asking(chunk) if asking is None else asking
        occurs = (asking @ self.present).toarray() > 0
        if self.evident is self.present:  # no level beyond occurring (the default): one product
            return occurs, occurs
        return (asking @ self.evident).toarray() > 0, occurs

    def asking(self, chunk: Sequence[ProfileQuery]) -> sparse.csr_matrix:
        """Profile × keyword, 1 where the profile asks for the keyword."""
        counts = [len(query.keyword_ids) for query in chunk]
        return sparse.csr_matrix(
            (
                np.ones(sum(counts), dtype=np.float32),
                np.concatenate([query.keyword_ids for query in chunk]),
                np.r_[0, np.cumsum(counts)],
            ),
            shape=(len(chunk), len(self.terms)),
        )

    def occurs(self, keywords: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For (keyword, window row) pairs: whether the keyword (or its plural/singular twin) occurs there."""
        if not len(keywords):
            return np.zeros(0, dtype=bool)
        return np.asarray(self.present[keywords, rows], dtype=bool).ravel()

    def query_for(self, profile: Profile) -> ProfileQuery:
        n, row_of, term_id = len(self.index.papers), self.index.row_of, self.term_id
        known = [(term_id[k.term], k.weight) for k in profile.keywords if k.weight > 0 and k.term in term_id]
        # Papers the subscriber has seen: mailed before, or named as a seed or rated.
        seen = [row_of[i] for i in profile.already_sent & self._window_ids]
        seen += [row_of[i] for i in (*profile.seeds, *profile.liked, *profile.disliked) if row_of.get(i, n) < n]
        blocked = [self.excluded_rows(phrase) for phrase in profile.excluded]
        if seen:
            blocked.append(np.array(seen, dtype=np.int64))
        categories = self.category_rows(profile.categories) if profile.categories else _NO_ROWS
        return ProfileQuery(
            profile=profile,
            keyword_ids=np.array([term for term, _ in known], dtype=np.int64),
            keyword_weights=np.array([weight for _, weight in known], dtype=np.float32),
            seed_rows=self.rows_of(profile.seeds),
            liked_rows=self.rows_of(profile.liked),
            negative_rows=self.rows_of(profile.disliked),
            authors=self.author_matches(profile.authors) if profile.authors else {},
            category_rows=categories,
            blocked_rows=np.concatenate(blocked) if blocked else _NO_ROWS,
            only_rows=categories if profile.category_filter and profile.categories else None,
            query_vector=self.query_vectors.get(profile.keyword_query) if known else None,
        )

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        if not ids:
            return _NO_ROWS
        rows = {self.index.row_of[paper_id] for paper_id in ids if paper_id in self.index.row_of}
        return np.array(sorted(rows), dtype=np.int64)

    def reference_reason(self, label: str, row: int) -> str:
        """ "<label>: <shortened title of row>", made once per run for each seed or liked paper."""
        texts = self.reference_texts(label)
        if texts[row] is None:
            title = " ".join(self.index.titles[row].split())
            texts[row] = f"{label}: {title if len(title) <= 90 else title[:89].rstrip() + '…'}"
        return str(texts[row])

    def reference_texts(self, label: str) -> np.ndarray:
        """Per space row, its `reference_reason` once made, else None (for the whole run): to gather
        many picks' reasons at once."""
        if label not in self._reference_texts:
            self._reference_texts[label] = np.full(len(self.index.titles), None, dtype=object)
        return self._reference_texts[label]

    @cached_property
    def category_table(self) -> CategoryTable:
        """The window papers' categories as numbers, for the reasons "in your category <c>"."""
        held = [paper.categories for paper in self.index.papers]
        keys: dict[str, int] = {}
        width = max(1, max((len(categories) for categories in held), default=0))
        own = np.full((len(held), width), -1, dtype=np.int64)
        archive = np.full((len(held), width), -1, dtype=np.int64)
        reasons = np.full((len(held), width), None, dtype=object)
        for row, categories in enumerate(held):
            own[row, : len(categories)] = [keys.setdefault(c.lower(), len(keys)) for c in categories]
            archive[row, : len(categories)] = [keys.setdefault(c.split(".")[0].lower(), len(keys)) for c in categories]
            reasons[row, : len(categories)] = [f"in your category {c}" for c in categories]
        return CategoryTable(keys, own, archive, reasons)

    def author_matches(self, followed: Sequence[str]) -> dict[int, str]:
        """Window rows by a followed author → that author's name as the profile spells it.

        Same rule as `profiles.same_author`: same surname, and the same first initial
        unless one of the two names has none.
        """
        if len(followed) == 1:
            return self._rows_by(followed[0])
        matches: dict[int, str] = {}
        for name in reversed(followed):  # the first spelling wins
            matches.update(self._rows_by(name))
        return matches

    def _rows_by(self, name: str) -> dict[int, str]:
        """Window rows by the author `name` → `name` (cached per run: the result is shared, read only)."""
        if name not in self._authors:
            surname, initials = author_key(name)
            keys = [(surname, initials[0]), (surname, "")] if initials else [(surname, "*")]
            rows = np.concatenate([self.index.authors.get(key, _NO_ROWS) for key in keys])
            self._authors[name] = dict.fromkeys(rows.tolist(), name)
        return self._authors[name]

    def category_rows(self, categories: Sequence[str]) -> np.ndarray:
        """Window rows in any of `categories` (or their archives); cached per run, read only."""
        key = tuple(categories)
        if key not in self._categories:
            found = [self.index.categories.get(category.lower(), _NO_ROWS) for category in categories]
            self._categories[key] = np.unique(np.concatenate([_NO_ROWS, *found])).astype(np.int64)
        return self._categories[key]

    def excluded_rows(self, phrase: str) -> np.ndarray:
        """Window rows whose text has `phrase` as whole words (cached per run)."""
        if phrase not in self._excluded:
            self._excluded[phrase] = _phrase_rows(self.index, phrase_tokens(phrase))
        return self._excluded[phrase]


def build_queries(
    vectorizer: TfidfVectorizer,
    window: sparse.csr_matrix,
    index: PaperIndex,
    profiles: Sequence[Profile],
    keyword_level: float = 0.0,
    query_vectors: Mapping[str, np.ndarray] | None = None,
) -> Queries:
    """The per-run lookups for these profiles' distinct keywords (`query_vectors`: the encoder's
    vector per `Profile.keyword_query`, when there is an encoder)."""
    typed = {keyword.term for profile in profiles for keyword in profile.keywords}
    spellings = {raw: fold_text(raw).strip() for raw in typed}  # as typed → folded
    terms = sorted(set(spellings.values()) - {""})
    return Queries(vectorizer, window, index, terms, spellings, keyword_level, query_vectors)


def _strong_matches(
    present: sparse.csr_matrix, words: sparse.csr_matrix, index: PaperIndex, level: float
) -> sparse.csr_matrix:
    """Keyword × paper, True where the keyword occurs and the BM25 of its words there reaches
    `level` of the most they could weigh (0 to 1: absolute, whatever the rest of the window)."""
    cells = present.tocoo()
    if level <= 0 or not cells.nnz:
        return present
    ideal = np.asarray(words @ index.bm25_ideal).ravel()
    strength = np.zeros(cells.nnz, dtype=np.float32)
    for slot in range(int(np.diff(words.indptr).max(initial=0))):  # the k-th word of every keyword at once
        has = np.flatnonzero(np.diff(words.indptr)[cells.row] > slot)
        if len(has):
            columns = words.indices[words.indptr[cells.row[has]] + slot]
            strength[has] += np.asarray(index.bm25[cells.col[has], columns], dtype=np.float32).ravel()
    keep = strength >= level * np.maximum(ideal[cells.row], 1e-9)
    return sparse.csr_matrix((np.ones(int(keep.sum()), dtype=bool), (cells.row[keep], cells.col[keep])), present.shape)


def _keyword_words(index: PaperIndex, terms: list[str]) -> sparse.csr_matrix:
    """Keyword × word matrix of the words each keyword is made of (stop words left out)."""
    rows, columns = [], []
    for number, term in enumerate(terms):
        for word in sorted(set(phrase_tokens(term)) - ENGLISH_STOP_WORDS):
            if word in index.tokens:
                rows.append(number)
                columns.append(index.tokens[word])
    values = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((values, (rows, columns)), shape=(len(terms), index.token_matrix.shape[1]))


def _phrase_rows(index: PaperIndex, tokens: tuple[str, ...]) -> np.ndarray:
    """Rows with every word of the phrase (from the token matrix), then checked in order."""
    if not tokens or any(token not in index.tokens for token in tokens):
        return _NO_ROWS
    matrix = index.token_matrix
    rows = _NO_ROWS
    for number, token in enumerate(tokens):
        column = index.tokens[token]
        found = matrix.indices[matrix.indptr[column] : matrix.indptr[column + 1]].astype(np.int64)
        rows = found if number == 0 else np.intersect1d(rows, found)
    if len(tokens) == 1:
        return rows
    pattern = compile_phrase(tokens)
    return np.array([row for row in rows if pattern.search(fold_text(index.papers[row].text))], dtype=np.int64)


def _confirmed(present: sparse.csr_matrix, terms: list[str], index: PaperIndex) -> sparse.csr_matrix:
    """`present` without the papers where a keyword of three words or more has all its bigrams but
    not in one run ("quantum error ... error correction" is not "quantum error correction")."""
    cells = present.tocoo()
    long = [number for number, term in enumerate(terms) if len(phrase_tokens(term)) >= 3]
    if not long or not cells.nnz:
        return present
    patterns = {n: [compile_phrase(phrase_tokens(v)) for v in keyword_variants(terms[n])] for n in long}
    keep = np.ones(cells.nnz, dtype=bool)
    folded: dict[int, str] = {}
    for at in np.flatnonzero(np.isin(cells.row, long)).tolist():
        row = int(cells.col[at])
        text = folded.get(row) or folded.setdefault(row, fold_text(index.papers[row].text))
        keep[at] = any(pattern.search(text) for pattern in patterns[int(cells.row[at])])
    return sparse.csr_matrix((cells.data[keep], (cells.row[keep], cells.col[keep])), shape=present.shape)


def _keyword_presence(vectorizer: TfidfVectorizer, window: sparse.csr_matrix, terms: list[str]) -> sparse.csr_matrix:
    """Keyword × paper: where each keyword (or its plural/singular twin) occurs.

    A keyword occurs in a paper when all its bigrams (or, for one word, the word) do.
    """
    vocabulary = getattr(vectorizer, "vocabulary_", None)
    shape = (len(terms), window.shape[1])
    if not terms or vocabulary is None:
        return sparse.csr_matrix((len(terms), window.shape[0]), dtype=bool)
    variants = [(number, variant) for number, term in enumerate(terms) for variant in keyword_variants(term)]
    owner = sparse.csr_matrix(
        (np.ones(len(variants), dtype=np.float32), ([n for n, _ in variants], range(len(variants)))),
        shape=(len(terms), len(variants)),
    )
    analyse = vectorizer.build_analyzer()
    required_rows, required_cols, needed = [], [], []
    for number, (_, variant) in enumerate(variants):
        features = analyse(variant)
        wanted = [f for f in features if " " in f] or features
        columns = [vocabulary.get(feature, -1) for feature in wanted]
        needed.append(len(columns) if columns and min(columns) >= 0 else np.inf)
        required_rows += [number] * len(columns)
        required_cols += [max(column, 0) for column in columns]
    required = sparse.csr_matrix(
        (np.ones(len(required_rows), dtype=np.float32), (required_rows, required_cols)), shape=(len(variants), shape[1])
    )
    counts = (required @ (window > 0).astype(np.float32).T).tocoo()
    hit = counts.data >= np.asarray(needed)[counts.row]
    variant_present = sparse.csr_matrix(
        (np.ones(int(hit.sum()), dtype=np.float32), (counts.row[hit], counts.col[hit])),
        shape=(len(variants), window.shape[0]),
    )
    return ((owner @ variant_present) > 0).tocsr()
