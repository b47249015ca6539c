"""Ranking quality on the shared corpus, month by month: digestd against five other tools' rankings.

Each calendar month from 2025-07 to 2026-07 is a window of candidates (265 to 1,776 papers);
papers published before it are the history seeds come from. A paper is relevant to a profile
when it carries the profile's arXiv category. Per window (profiles in `bench/quality_profiles.py`):

    keywords      one profile per category with 5+ papers in the window (30 categories)
    seeds         3 draws per such category, each of 1 to 10 older papers of the category
    absent        keyword profiles for topics the corpus lacks (biology, economics, law, music...),
                  and seed profiles of categories with at most 2 papers in the window
    narrow        keyword profiles for categories with 1 to 4 papers in the window

Reported, as the mean over windows with a 95 % t-interval: nDCG@10 for keywords and seeds, of
the ranking (digestd's score order over every candidate, before the standard of evidence leaves
papers out: what the baselines, which always send 10, are) and of what digestd sends; off-topic
papers per digest for absent topics (and the share of those digests with none); the precision
of what is sent for narrow profiles. The evidence levels are chosen on the tuning windows
(`--calibrate` runs that grid) and reported on the held-out ones.

    python -m bench.quality                 # the calibrated levels, every baseline, held-out windows
    python -m bench.quality --calibrate     # the grid, digestd only, tuning windows
    python -m bench.quality --encoder MODEL # digestd with and without a sentence encoder (`[encoder] model`),
                                            # and zotero-arxiv-daily's mean similarity in the encoder's space
    python -m bench.quality --encoder MODEL --calibrate   # the grid with the encoder

The first takes 2 minutes on an idle 2-core machine (5 at load 3 to 4), nearly all of it in
the SVM and logistic-regression baselines of the two largest windows; the second about 25 s.
With `--encoder`, the ~11,000 texts the windows need are embedded once (~11 minutes on 2 cores
for all-MiniLM-L6-v2) and kept in the cache file (`--cache`) for the next runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from bench.corpus import load_corpus
from bench.quality_profiles import ABSENT_KEYWORDS, ABSENT_SEED_CATEGORIES, KEYWORDS, NARROW
from digestd.ranking.digest import Window, build_digests, prepare_window
from digestd.ranking.queries import build_queries
from digestd.ranking.scoring import ENCODER_EVIDENCE, EVIDENCE, Evidence, score_chunk
from digestd.records import Keyword, PaperRecord, Profile

K = 10
ENCODED = "digestd + encoder"
ZOTERO_ENCODED = "zotero-arxiv-daily, encoder"
MONTHS = [f"2025-{m:02d}" for m in range(7, 13)] + [f"2026-{m:02d}" for m in range(1, 8)]
TUNING = ("2025-08", "2025-10", "2025-12", "2026-02", "2026-04", "2026-06")
SEED_DRAWS = 3
MIN_RELEVANT = 5  # papers of a category in a window for its keyword and seed profiles
GRID = {"keyword": (0.0, 0.3, 0.5), "reference": (0.25, 0.275, 0.3, 0.325, 0.35), "lift": (0.4, 0.5)}
# In the encoder's mixed space any two papers are closer: the grid reaches higher.
ENCODER_GRID = {"keyword": (0.0, 0.5), "reference": (0.3, 0.35, 0.4, 0.45, 0.5), "lift": (0.4, 0.5, 0.6)}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "digestd-bench-encoder.npz"
# The most off-topic papers per absent-topic digest that calibration accepts on the tuning windows:
# under the goal of 1, since the held-out windows sent a quarter more than the tuning ones before.
OFF_TOPIC_LIMIT = 0.8


@dataclass(frozen=True)
class Case:
    kind: str  # keywords, seeds, absent, narrow
    name: str
    keywords: tuple[str, ...] = ()
    seeds: tuple[PaperRecord, ...] = ()
    home: tuple[str, ...] = ()  # categories (or archives) that make a paper on-topic


@dataclass
class Month:
    name: str
    window: list[PaperRecord]
    history: list[PaperRecord]
    cases: list[Case] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibrate", action="store_true", help="run the grid of evidence levels on tuning windows")
    parser.add_argument(
        "--encoder", metavar="MODEL", help="also rank with this sentence encoder (a model name or directory)"
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"the encoder's vectors between runs ({CACHE})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    months = load_months(load_corpus())
    for month in months:
        month.cases = make_cases(month)
    counts = {kind: sum(case.kind == kind for m in months for case in m.cases) for kind in ("keywords", "seeds")}
    absent = sum(case.kind == "absent" for m in months for case in m.cases)
    narrow = sum(case.kind == "narrow" for m in months for case in m.cases)
    categories = len({case.name for m in months for case in m.cases if case.kind == "keywords"})
    print(
        f"{len(months)} monthly windows ({len(TUNING)} tuning, {len(months) - len(TUNING)} held out), "
        f"{categories} categories; profiles: {counts['keywords']} keywords, {counts['seeds']} seeds, "
        f"{absent} absent-topic, {narrow} narrow"
    )
    vectors = embed_months(months, args.encoder, args.cache) if args.encoder else None
    if args.calibrate:
        calibrate([m for m in months if m.name in TUNING], vectors)
    else:
        report(months, vectors)
    print(f"total {time.perf_counter() - started:.0f} s")


def load_months(corpus: list[PaperRecord]) -> list[Month]:
    dated = [paper for paper in corpus if paper.published]
    months = []
    for name in MONTHS:
        start = date.fromisoformat(name + "-01")
        window = [paper for paper in dated if paper.published and paper.published.isoformat()[:7] == name]
        history = [paper for paper in dated if paper.published and paper.published < start]
        months.append(Month(name, window, history))
    return months


def make_cases(month: Month) -> list[Case]:
    count = {name: sum(_in(paper, (name,)) for paper in month.window) for name in {*KEYWORDS, *NARROW}}
    rng = np.random.default_rng([2026, MONTHS.index(month.name)])
    cases = [Case("keywords", c, tuple(words), home=(c,)) for c, words in KEYWORDS.items() if count[c] >= MIN_RELEVANT]
    for case in list(cases):
        pool = [paper for paper in month.history if paper.primary_category == case.name]
        pool = pool if len(pool) >= 10 else [paper for paper in month.history if _in(paper, case.home)]
        for _ in range(SEED_DRAWS):
            size = min(int(rng.integers(1, 11)), len(pool))
            chosen = sorted(rng.choice(len(pool), size=size, replace=False))
            cases.append(Case("seeds", case.name, seeds=tuple(pool[i] for i in chosen), home=case.home))
    for topic, (words, home) in ABSENT_KEYWORDS.items():
        cases.append(Case("absent", topic, tuple(words), home=home))
    for category in ABSENT_SEED_CATEGORIES:
        pool = [paper for paper in month.history if category in paper.categories]
        if sum(category in paper.categories for paper in month.window) <= 2 and len(pool) >= 10:
            size = int(rng.integers(1, 11))
            chosen = sorted(rng.choice(len(pool), size=size, replace=False))
            home = (category.split(".")[0] if category.startswith("math.") else category,)
            cases.append(Case("absent", f"seeds {category}", seeds=tuple(pool[i] for i in chosen), home=home))
    for category, words in NARROW.items():
        if 1 <= count[category] <= 4:
            cases.append(Case("narrow", category, tuple(words), home=(category,)))
    return cases


def _in(paper: PaperRecord, home: tuple[str, ...]) -> bool:
    """Whether the paper carries one of `home` (a category, or an archive such as "q-bio")."""
    return any(c == h or c.startswith(h + ".") for c in paper.categories for h in home)


# --- digestd ---------------------------------------------------------------------------------------


def prepare(month: Month, vectors: Mapping[str, np.ndarray] | None = None) -> Window:
    seeds = {paper.id: paper for case in month.cases for paper in case.seeds}
    return prepare_window(month.window, referenced=list(seeds.values()), vectors=vectors)


def embed_months(months: list[Month], model: str, cache: Path) -> dict[str, np.ndarray]:
    """The encoder's unit vectors of every window paper, seed and keyword query (`Profile.keyword_query`)
    of these months, from `cache` where it has them (keyed by model), the model for the rest."""
    texts = {paper.id: paper.text for month in months for paper in month.window}
    texts |= {paper.id: paper.text for month in months for case in month.cases for paper in case.seeds}
    texts |= {query_key(case.keywords): ", ".join(case.keywords) for m in months for case in m.cases if case.keywords}
    kept: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as stored:
            if (str(stored["model"]) if "model" in stored.files else model) == model:
                kept = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    missing = [key for key in texts if key not in kept]
    if missing:
        from digestd.config import EncoderSettings
        from digestd.embedding.encoder import Encoder

        print(f"embedding {len(missing):,} texts with {model}", flush=True)
        found = Encoder(EncoderSettings(model=model)).encode([texts[key] for key in missing])
        kept.update(zip(missing, np.asarray(found, dtype=np.float32), strict=True))
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(list(kept)), vectors=np.stack(list(kept.values())), model=np.array(model))
    return kept


def query_key(keywords: tuple[str, ...]) -> str:
    """The cache's key for a keyword query (paper ids are the others)."""
    return "keywords: " + ", ".join(keywords)


def query_vectors(cases: list[Case], vectors: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    """`Profile.keyword_query` → vector, as `build_digests(query_vectors=...)` takes them."""
    if vectors is None:
        return None
    return {", ".join(case.keywords): vectors[query_key(case.keywords)] for case in cases if case.keywords}


def profiles_of(cases: list[Case]) -> list[Profile]:
    return [
        Profile(
            number,
            f"{number}@bench",
            keywords=tuple(Keyword(term) for term in case.keywords),
            seeds=tuple(paper.id for paper in case.seeds),
            max_papers=K,
        )
        for number, case in enumerate(cases)
    ]


def rank_digestd(
    window: Window, cases: list[Case], evidence: Evidence, queried: Mapping[str, np.ndarray] | None = None
) -> list[list[str]]:
    """What digestd sends each profile (`queried`: the keyword queries' vectors, with an encoder)."""
    now = datetime(2026, 8, 1)
    profiles = profiles_of(cases)
    digests = build_digests(
        window, profiles, period_start=now, period_end=now, now=now, evidence=evidence, query_vectors=queried
    )
    return [[pick.paper.id for pick in digest.picks] for digest in digests]


def order_digestd(
    window: Window, cases: list[Case], queried: Mapping[str, np.ndarray] | None = None
) -> list[list[str]]:
    """digestd's ranking alone: the best K papers by score, evidence or not (as the baselines rank)."""
    profiles = profiles_of(cases)
    matrix = window.matrix[: len(window.papers)]
    queries = build_queries(window.vectorizer, matrix, window.index, profiles, query_vectors=queried)
    asked = [queries.query_for(profile) for profile in profiles]
    scores, _ = score_chunk(window.space, queries, asked, window.index.popularity, admit=False)
    return [_top(list(window.papers), row) for row in scores]


# --- baselines -------------------------------------------------------------------------------------


class Spaces:
    """Fitted once per window and shared by the baselines: each baseline's own text space."""

    def __init__(self, month: Month) -> None:
        rng = np.random.default_rng(0)
        history = month.history
        self.window = month.window
        self.background = [history[i].text for i in rng.choice(len(history), size=1000, replace=False)]
        texts_of = {text for case in month.cases for text in _seed_texts(case)}
        extra = sorted(texts_of | set(self.background))
        self.row = {text: len(self.window) + number for number, text in enumerate(extra)}
        texts = [paper.text for paper in self.window] + extra
        self.sanity = TfidfVectorizer(
            strip_accents="unicode", stop_words="english", token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
            ngram_range=(1, 2), max_features=20000, sublinear_tf=True, max_df=0.1, min_df=5,
        ).fit_transform(texts).tocsr()  # fmt: skip
        self.tfidf = (
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english", strip_accents="unicode")
            .fit_transform(texts)
            .tocsr()
        )
        self.counter = CountVectorizer(stop_words="english", strip_accents="unicode")
        self.counts = self.counter.fit_transform([paper.text for paper in self.window]).tocsc().astype(np.float64)

    def rows(self, texts: list[str]) -> list[int]:
        return [self.row[text] for text in texts]


def _seed_texts(case: Case) -> list[str]:
    """Seed papers' texts; for a keyword profile the keywords as one pseudo-document."""
    return [paper.text for paper in case.seeds] if case.seeds else [" ".join(case.keywords)]


def _keyword_alert(spaces: Spaces, case: Case) -> list[str] | None:
    """Any keyword as whole words in title or abstract, newest first (arXiv/Scholar alerts)."""
    if not case.keywords:
        return None
    patterns = [re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE) for term in case.keywords]
    hits = [paper for paper in spaces.window if any(pattern.search(paper.text) for pattern in patterns)]
    hits.sort(key=lambda paper: (paper.published, paper.id), reverse=True)
    return [paper.id for paper in hits[:K]]


def _bm25(spaces: Spaces, case: Case, k1: float = 1.2, b: float = 0.75) -> list[str] | None:
    """Okapi BM25 of the keywords' words over title + abstract."""
    if not case.keywords:
        return None
    counts, vocabulary = spaces.counts, spaces.counter.vocabulary_
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    df = np.diff(counts.indptr)
    idf = np.log1p((counts.shape[0] - df + 0.5) / (df + 0.5))
    scores = np.zeros(counts.shape[0])
    for word in spaces.counter.build_analyzer()(" ".join(case.keywords)):
        if word in vocabulary:
            tf = counts[:, vocabulary[word]].toarray().ravel()
            scores += idf[vocabulary[word]] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / lengths.mean()))
    return _top(spaces.window, scores)


def _svm(spaces: Spaces, case: Case) -> list[str]:
    """arxiv-sanity-lite: LinearSVC on its TF-IDF, the seeds against every candidate."""
    n = len(spaces.window)
    seeds = spaces.rows(_seed_texts(case))
    features = spaces.sanity[np.r_[np.arange(n), seeds]]
    labels = np.r_[np.zeros(n), np.ones(len(seeds))]
    model = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, labels)
    return _top(spaces.window, model.decision_function(spaces.sanity[:n]))


def _zotero(spaces: Spaces, case: Case) -> list[str]:
    """zotero-arxiv-daily: similarity to the library, weighted by how recently each was added."""
    seeds = spaces.tfidf[spaces.rows(_seed_texts(case))]
    newest_first = np.argsort([-(p.published or date.min).toordinal() for p in case.seeds]) if case.seeds else [0]
    decay = 1 / (1 + np.log10(np.arange(len(newest_first)) + 1))
    weights = np.zeros(len(newest_first))
    weights[np.asarray(newest_first)] = decay / decay.sum()
    return _top(spaces.window, (spaces.tfidf[: len(spaces.window)] @ seeds.T).toarray() @ weights)


def _zotero_encoded(month: Month, case: Case, vectors: Mapping[str, np.ndarray]) -> list[str]:
    """zotero-arxiv-daily as it ships: a sentence encoder's cosine to the library, with its decay
    (here the encoder digestd is given; a keyword profile's library is its keywords as one query)."""
    if case.seeds:
        library = np.stack([vectors[paper.id] for paper in case.seeds])
        newest_first = np.argsort([-(p.published or date.min).toordinal() for p in case.seeds])
    else:
        library, newest_first = vectors[query_key(case.keywords)][None, :], np.array([0])
    decay = 1 / (1 + np.log10(np.arange(len(newest_first)) + 1))
    weights = np.zeros(len(newest_first))
    weights[newest_first] = decay / decay.sum()
    window = np.stack([vectors[paper.id] for paper in month.window])
    return _top(month.window, (window @ library.T) @ weights)


def _scholar_inbox(spaces: Spaces, case: Case) -> list[str]:
    """Scholar Inbox: logistic regression, the seeds against random background papers."""
    seeds = spaces.rows(_seed_texts(case))
    training = spaces.tfidf[seeds + spaces.rows(spaces.background)]
    labels = np.r_[np.ones(len(seeds)), np.zeros(len(spaces.background))]
    model = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear").fit(training, labels)
    return _top(spaces.window, model.decision_function(spaces.tfidf[: len(spaces.window)]))


def _top(window: list[PaperRecord], scores: np.ndarray) -> list[str]:
    return [window[i].id for i in np.argsort(-scores, kind="stable")[:K]]


BASELINES: dict[str, Callable[[Spaces, Case], list[str] | None]] = {
    "keyword alert": _keyword_alert,
    "BM25": _bm25,
    "SVM (arxiv-sanity)": _svm,
    "mean similarity (zotero-arxiv-daily)": _zotero,
    "logistic regression (Scholar Inbox)": _scholar_inbox,
}


# --- measures --------------------------------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    gains = [1 / np.log2(position + 2) for position, paper in enumerate(ranked[:k]) if paper in relevant]
    ideal = sum(1 / np.log2(position + 2) for position in range(min(k, len(relevant))))
    return float(sum(gains) / ideal) if ideal else 0.0


MEASURES = (
    "nDCG keywords",
    "nDCG seeds",
    "nDCG kw, sent",
    "nDCG seeds, sent",
    "off-topic/digest",
    "absent: none sent",
    "off-topic, keywords",
    "off-topic, seeds",
    "narrow precision",
    "narrow sent",
)


def measure(month: Month, ranked: list[list[str] | None], order: list[list[str]] | None = None) -> dict[str, float]:
    """The window's figures for one system (NaN where the system does not apply): `ranked` is what
    it sends, `order` its ranking when that differs (digestd's, before the standard of evidence)."""
    by_kind: dict[str, list[tuple[Case, list[str]]]] = {}
    for case, ids in zip(month.cases, ranked, strict=True):
        if ids is not None:
            by_kind.setdefault(case.kind, []).append((case, ids))
    relevant = {home: {p.id for p in month.window if _in(p, home)} for home in {c.home for c in month.cases}}
    figures = dict.fromkeys(MEASURES, float("nan"))
    for kind, name in (("keywords", "nDCG kw, sent"), ("seeds", "nDCG seeds, sent")):
        if kind in by_kind:
            figures[name] = float(np.mean([ndcg_at_k(ids, relevant[c.home]) for c, ids in by_kind[kind]]))
    orders = [(case, ids) for case, ids in zip(month.cases, order or ranked, strict=True) if ids is not None]
    for kind, name in (("keywords", "nDCG keywords"), ("seeds", "nDCG seeds")):
        scored = [ndcg_at_k(ids, relevant[c.home]) for c, ids in orders if c.kind == kind]
        if scored:
            figures[name] = float(np.mean(scored))
    if "absent" in by_kind:
        off = [sum(paper not in relevant[c.home] for paper in ids) for c, ids in by_kind["absent"]]
        figures["off-topic/digest"] = float(np.mean(off))
        figures["absent: none sent"] = float(np.mean([count == 0 for count in off]))
        seeded = np.array([bool(c.seeds) for c, _ in by_kind["absent"]])
        figures["off-topic, keywords"] = float(np.mean(np.array(off)[~seeded]))
        figures["off-topic, seeds"] = float(np.mean(np.array(off)[seeded])) if seeded.any() else float("nan")
    if "narrow" in by_kind:
        sent = sum(len(ids) for _, ids in by_kind["narrow"])
        hits = sum(paper in relevant[c.home] for c, ids in by_kind["narrow"] for paper in ids)
        figures["narrow precision"] = hits / sent if sent else 1.0
        figures["narrow sent"] = sent / len(by_kind["narrow"])
    return figures


def summarise(values: list[float]) -> str:
    """Mean over windows and its 95 % t-interval."""
    data = np.array([v for v in values if not np.isnan(v)])
    if not len(data):
        return "n/a"
    if len(data) == 1:
        return f"{data[0]:.3f}"
    half = stats.t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / np.sqrt(len(data))
    return f"{data.mean():.3f} ± {half:.3f}"


# --- the two modes ---------------------------------------------------------------------------------


def report(months: list[Month], vectors: Mapping[str, np.ndarray] | None = None) -> None:
    """digestd (calibrated levels; and with the encoder when there are `vectors`) and every baseline,
    per window; tables for held-out and tuning windows."""
    figures: dict[str, dict[str, list[dict[str, float]]]] = {"held out": {}, "tuning": {}}
    for month in months:
        part = "tuning" if month.name in TUNING else "held out"
        started = time.perf_counter()
        window = prepare(month)
        rankings: dict[str, list[list[str] | None]] = {"digestd": list(rank_digestd(window, month.cases, EVIDENCE))}
        orders = {"digestd": order_digestd(window, month.cases)}
        if vectors is not None:
            encoded, queried = prepare(month, vectors), query_vectors(month.cases, vectors)
            rankings[ENCODED] = list(rank_digestd(encoded, month.cases, ENCODER_EVIDENCE, queried))
            orders[ENCODED] = order_digestd(encoded, month.cases, queried)
        if part == "held out":
            spaces = Spaces(month)
            for name, rank in BASELINES.items():  # the costly ones only where nDCG is measured
                cheap = name in ("keyword alert", "BM25")
                rankings[name] = [
                    rank(spaces, case) if cheap or case.kind in ("keywords", "seeds") else None for case in month.cases
                ]
            if vectors is not None:  # zotero-arxiv-daily's own method embeds: the same encoder, its decay
                rankings[ZOTERO_ENCODED] = [
                    _zotero_encoded(month, case, vectors) if case.kind in ("keywords", "seeds") else None
                    for case in month.cases
                ]
        for name, ranked in rankings.items():
            figures[part].setdefault(name, []).append(measure(month, ranked, orders.get(name)))
        sent = np.mean([len(ids or ()) for ids in rankings["digestd"]])
        print(f"  {month.name}: {len(month.window)} papers, {len(month.cases)} profiles, digestd sends {sent:.1f} "
              f"papers per digest, {time.perf_counter() - started:.0f} s")  # fmt: skip
    print(f"evidence levels: {EVIDENCE}" + (f"; with the encoder {ENCODER_EVIDENCE}" if vectors is not None else ""))
    for part in ("held out", "tuning"):
        print(f"\n{part} windows: mean over windows ± 95 % interval")
        print(f"{'system':38}" + "".join(f"{name:>20}" for name in MEASURES))
        for system, rows in figures[part].items():
            print(f"{system:38}" + "".join(f"{summarise([r[m] for r in rows]):>20}" for m in MEASURES))
    for ours in ("digestd", ENCODED) if vectors is not None else ("digestd",):
        print_differences(figures["held out"], ours)


def print_differences(figures: dict[str, list[dict[str, float]]], system_name: str = "digestd") -> None:
    """`system_name`'s nDCG less each other system's, window by window: the paired difference and its
    95 % interval, free of how hard each window is (which the tables' intervals include)."""
    compared = MEASURES[:4]
    print(f"\nheld out windows: {system_name} less each system, paired by window, mean ± 95 % interval")
    print(f"{'system':38}" + "".join(f"{name:>20}" for name in compared))
    ours = figures[system_name]
    for system, rows in figures.items():
        if system != system_name:
            cells = [summarise([a[m] - b[m] for a, b in zip(ours, rows, strict=True)]) for m in compared]
            print(f"{system:38}" + "".join(f"{cell:>20}" for cell in cells))


def calibrate(months: list[Month], vectors: Mapping[str, np.ndarray] | None = None) -> None:
    """digestd (with the encoder when there are `vectors`) over the grid of evidence levels on the
    tuning windows. The choice: the best mean of the two nDCGs of what is sent among levels sending at
    most OFF_TOPIC_LIMIT off-topic papers per absent-topic digest. (The levels do not change the
    ranking, only where it is cut.)"""
    windows = [(month, prepare(month, vectors), query_vectors(month.cases, vectors)) for month in months]
    results = []
    shown = [m for m in MEASURES if m not in ("nDCG keywords", "nDCG seeds")]
    grid = GRID if vectors is None else ENCODER_GRID
    for keyword, reference, lift in itertools.product(grid["keyword"], grid["reference"], grid["lift"]):
        evidence = Evidence(keyword=keyword, reference=reference, lift=lift)
        rows = [measure(month, list(rank_digestd(w, month.cases, evidence, queried))) for month, w, queried in windows]
        mean = {m: float(np.nanmean([r[m] for r in rows])) for m in MEASURES}
        results.append((evidence, mean))
        print(f"{keyword:4} {reference:5} {lift:5} " + " ".join(f"{m}={mean[m]:.3f}" for m in shown), flush=True)
    allowed = [(e, m) for e, m in results if m["off-topic/digest"] <= OFF_TOPIC_LIMIT] or results
    best = max(allowed, key=lambda item: item[1]["nDCG kw, sent"] + item[1]["nDCG seeds, sent"])
    print(f"chosen: {best[0]}")


if __name__ == "__main__":
    main()
