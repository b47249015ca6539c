"""Ranking quality on the shared corpus: digestd against the ranking of five other tools.

Candidates are the corpus papers published from --window-start on; a paper is relevant to a
profile when it carries the profile's arXiv category. Two kinds of profiles per category:
keywords a researcher of that field would type, and seeds (3 to 5 papers of the category
published before the window, drawn at random). Reports nDCG@10 and precision@10.

    python -m bench.quality [--window-start 2026-01-01] [--seed-profiles 3]
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import date, datetime

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from bench.corpus import load_corpus
from digestd.ranking.digest import build_digests, prepare_window
from digestd.records import Keyword, PaperRecord, Profile

K = 10
# What a researcher in each field might type into an alert form (written before measuring).
KEYWORDS: dict[str, list[str]] = {
    "quant-ph": [
        "quantum error correction",
        "entanglement",
        "qubit",
        "quantum circuits",
        "variational quantum algorithms",
    ],
    "cs.AI": ["LLM agents", "reasoning", "planning", "multi-agent systems", "knowledge graphs", "agentic AI"],
    "cs.CV": [
        "image segmentation",
        "object detection",
        "vision transformer",
        "3D reconstruction",
        "video understanding",
    ],
    "cs.CL": [
        "language models",
        "machine translation",
        "question answering",
        "multilingual",
        "natural language processing",
    ],
    "cs.LG": [
        "deep learning",
        "neural networks",
        "reinforcement learning",
        "generalization",
        "representation learning",
    ],
    "cs.IT": ["channel capacity", "coding theory", "information theory", "MIMO", "wireless communication"],
    "cs.RO": ["robot manipulation", "motion planning", "autonomous navigation", "legged robots", "SLAM", "grasping"],
    "cs.GR": ["rendering", "mesh", "Gaussian splatting", "character animation", "geometry processing"],
    "astro-ph.GA": ["galaxy evolution", "star formation", "interstellar medium", "Milky Way", "active galactic nuclei"],
    "astro-ph.CO": ["cosmological parameters", "dark energy", "cosmic microwave background", "large-scale structure"],
    "astro-ph.IM": ["telescope", "instrumentation", "detector calibration", "spectrograph", "data reduction pipeline"],
    "astro-ph.HE": ["gamma-ray bursts", "X-ray binaries", "cosmic rays", "neutron stars", "pulsars"],
    "astro-ph.SR": ["stellar evolution", "solar flares", "asteroseismology", "binary stars", "stellar atmospheres"],
    "astro-ph.EP": ["exoplanets", "planet formation", "protoplanetary disks", "exoplanet atmospheres", "asteroids"],
    "hep-th": ["string theory", "holography", "AdS/CFT", "conformal field theory", "supersymmetry"],
    "hep-ph": ["Standard Model", "Higgs boson", "dark matter", "neutrino masses", "collider phenomenology", "QCD"],
    "gr-qc": ["gravitational waves", "black holes", "general relativity", "modified gravity", "spacetime"],
    "cond-mat.stat-mech": ["statistical mechanics", "phase transitions", "non-equilibrium", "entropy production"],
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window-start", type=date.fromisoformat, default=date(2026, 1, 1))
    parser.add_argument("--seed-profiles", type=int, default=3, help="seed profiles per category")
    args = parser.parse_args(argv)
    corpus = load_corpus()
    window = [paper for paper in corpus if paper.published and paper.published >= args.window_start]
    history = [paper for paper in corpus if paper.published and paper.published < args.window_start]
    cases = _keyword_cases() + _seed_cases(history, args.seed_profiles)
    print(f"window: {len(window)} papers from {args.window_start}; {len(cases)} profiles; {len(KEYWORDS)} categories")
    seeds = {paper.id: paper for _, _, items in cases for paper in items if isinstance(paper, PaperRecord)}
    rankings = {"digestd": _digestd(window, list(seeds.values()), cases)}
    started = time.perf_counter()
    spaces = Spaces(window, history, cases)
    print(f"  baseline spaces: {time.perf_counter() - started:.1f} s")
    for name, rank in BASELINES.items():
        started = time.perf_counter()
        rankings[name] = [rank(spaces, kind, items) for kind, _, items in cases]
        print(f"  {name}: {time.perf_counter() - started:.1f} s")
    _print_table(window, cases, rankings)


def _keyword_cases() -> list[tuple[str, str, list]]:
    return [("keywords", category, keywords) for category, keywords in KEYWORDS.items()]


def _seed_cases(history: list[PaperRecord], per_category: int) -> list[tuple[str, str, list]]:
    rng = np.random.default_rng(2026)
    cases: list[tuple[str, str, list]] = []
    for category in KEYWORDS:
        pool = [paper for paper in history if paper.primary_category == category]
        for number in range(per_category):
            size = min(len(pool), 3 + number % 3)
            chosen = rng.choice(len(pool), size=size, replace=False)
            cases.append(("seeds", category, [pool[i] for i in sorted(chosen)]))
    return cases


def _digestd(window: list[PaperRecord], seeds: list[PaperRecord], cases: list) -> list[list[str]]:
    started = time.perf_counter()
    prepared = prepare_window(window, referenced=seeds)
    profiles = []
    for number, (kind, _, items) in enumerate(cases):
        if kind == "keywords":
            profiles.append(Profile(number, f"{number}@bench", keywords=tuple(Keyword(t) for t in items), max_papers=K))
        else:
            profiles.append(Profile(number, f"{number}@bench", seeds=tuple(p.id for p in items), max_papers=K))
    now = datetime(2026, 7, 1)
    digests = build_digests(prepared, profiles, period_start=now, period_end=now, now=now)
    print(f"  digestd: {time.perf_counter() - started:.1f} s")
    return [[pick.paper.id for pick in digest.picks] for digest in digests]


class Spaces:
    """Fitted once per run and shared by the baselines: each baseline's own text space."""

    def __init__(self, window: list[PaperRecord], history: list[PaperRecord], cases: list) -> None:
        rng = np.random.default_rng(0)
        self.window = window
        self.background = [history[i].text for i in rng.choice(len(history), size=1000, replace=False)]
        extra = sorted({text for kind, _, items in cases for text in _seed_texts(kind, items)} | set(self.background))
        self.row = {text: len(window) + number for number, text in enumerate(extra)}
        texts = [paper.text for paper in window] + extra
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
        self.counts = self.counter.fit_transform([paper.text for paper in window]).tocsc().astype(np.float64)

    def rows(self, texts: list[str]) -> list[int]:
        return [self.row[text] for text in texts]


def _keyword_alert(spaces: Spaces, kind: str, items: list) -> list[str] | None:
    """Any keyword as whole words in title or abstract, newest first (arXiv/Scholar alerts)."""
    if kind != "keywords":
        return None
    patterns = [re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE) for term in items]
    hits = [paper for paper in spaces.window if any(pattern.search(paper.text) for pattern in patterns)]
    hits.sort(key=lambda paper: (paper.published, paper.id), reverse=True)
    return [paper.id for paper in hits[:K]]


def _bm25(spaces: Spaces, kind: str, items: list, k1: float = 1.2, b: float = 0.75) -> list[str] | None:
    """Okapi BM25 of the keywords' words over title + abstract."""
    if kind != "keywords":
        return None
    counts, vocabulary = spaces.counts, spaces.counter.vocabulary_
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    df = np.diff(counts.indptr)
    idf = np.log1p((counts.shape[0] - df + 0.5) / (df + 0.5))
    scores = np.zeros(counts.shape[0])
    for word in spaces.counter.build_analyzer()(" ".join(items)):
        if word in vocabulary:
            tf = counts[:, vocabulary[word]].toarray().ravel()
            scores += idf[vocabulary[word]] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / lengths.mean()))
    return _top(spaces.window, scores)


def _seed_texts(kind: str, items: list) -> list[str]:
    """Seed papers' texts; for a keyword profile the keywords as one pseudo-document."""
    return [" ".join(items)] if kind == "keywords" else [paper.text for paper in items]


def _svm(spaces: Spaces, kind: str, items: list) -> list[str]:
    """arxiv-sanity-lite: LinearSVC on its TF-IDF, the seeds against every candidate."""
    n = len(spaces.window)
    seeds = spaces.rows(_seed_texts(kind, items))
    features = spaces.sanity[np.r_[np.arange(n), seeds]]
    labels = np.r_[np.zeros(n), np.ones(len(seeds))]
    model = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, labels)
    return _top(spaces.window, model.decision_function(spaces.sanity[:n]))


def _zotero(spaces: Spaces, kind: str, items: list) -> list[str]:
    """zotero-arxiv-daily: similarity to the library, weighted by how recently each was added."""
    seeds = spaces.tfidf[spaces.rows(_seed_texts(kind, items))]
    newest_first = np.argsort([-(p.published or date.min).toordinal() for p in items]) if kind == "seeds" else [0]
    decay = 1 / (1 + np.log10(np.arange(len(newest_first)) + 1))
    weights = np.zeros(len(newest_first))
    weights[np.asarray(newest_first)] = decay / decay.sum()
    return _top(spaces.window, (spaces.tfidf[: len(spaces.window)] @ seeds.T).toarray() @ weights)


def _scholar_inbox(spaces: Spaces, kind: str, items: list) -> list[str]:
    """Scholar Inbox: logistic regression, the seeds against random background papers."""
    seeds = spaces.rows(_seed_texts(kind, items))
    training = spaces.tfidf[seeds + spaces.rows(spaces.background)]
    labels = np.r_[np.ones(len(seeds)), np.zeros(len(spaces.background))]
    model = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear").fit(training, labels)
    return _top(spaces.window, model.decision_function(spaces.tfidf[: len(spaces.window)]))


def _top(window: list[PaperRecord], scores: np.ndarray) -> list[str]:
    return [window[i].id for i in np.argsort(-scores, kind="stable")[:K]]


BASELINES: dict[str, Callable[..., list[str] | None]] = {
    "keyword alert": _keyword_alert,
    "BM25": _bm25,
    "SVM (arxiv-sanity)": _svm,
    "recency-weighted sim (zotero-arxiv-daily)": _zotero,
    "logistic regression (Scholar Inbox)": _scholar_inbox,
}


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    gains = [1 / np.log2(position + 2) for position, paper in enumerate(ranked[:k]) if paper in relevant]
    ideal = sum(1 / np.log2(position + 2) for position in range(min(k, len(relevant))))
    return float(sum(gains) / ideal) if ideal else 0.0


def precision_at_k(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    return sum(paper in relevant for paper in ranked[:k]) / k


def _print_table(window: list[PaperRecord], cases: list, rankings: dict[str, list]) -> None:
    relevant = {category: {p.id for p in window if category in p.categories} for category in KEYWORDS}
    print(f"\n{'system':44} {'profiles':>9} {'nDCG@10':>8} {'P@10':>6}")
    for kind in ("keywords", "seeds"):
        chosen = [number for number, case in enumerate(cases) if case[0] == kind]
        for system, ranked in rankings.items():
            if ranked[chosen[0]] is None:
                print(f"{system:44} {kind:>9} {'n/a':>8} {'n/a':>6}")
                continue
            ndcg = np.mean([ndcg_at_k(ranked[i], relevant[cases[i][1]]) for i in chosen])
            precision = np.mean([precision_at_k(ranked[i], relevant[cases[i][1]]) for i in chosen])
            print(f"{system:44} {kind:>9} {ndcg:8.3f} {precision:6.3f}")
        print()


if __name__ == "__main__":
    main()
