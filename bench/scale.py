"""Time and memory of the whole ranking step for many subscribers.

Synthetic but realistic profiles: 3 to 10 keywords taken from the top terms of a random
corpus paper (so each profile has a topic), 0 to 5 seeds from older papers, excluded
words for 30 %, followed authors for 20 % (spelled with initials), categories for 30 %
(a filter for 5 %), up to 200 papers already sent for half, max_papers 10/20/30. The
window papers get synthetic author lists (the corpus has none).

    python -m bench.scale --subscribers 100000 --papers 2000     # one run
    python -m bench.scale --sweep                                  # the scaling table
    python -m bench.scale --encoder                                # with a sentence encoder's vectors

Measured: wall time of `prepare_window` + `build_digests` (everything: profiles, scoring,
filters, MMR, sections, reasons), the CPU time of both (scoring runs in a second thread,
so CPU can exceed wall), the peak resident memory of the process, and the load average
(other work on the machine slows the wall time down).

`--encoder` ranks as with `[encoder] model` set: every paper and keyword list has a 384-dimension
unit vector (random ones here: what costs is their number, not their values; computing them is
the encoder's work at ingest, not the ranking's).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from bench.corpus import load_corpus
from digestd.ranking.digest import build_digests, prepare_window
from digestd.records import Keyword, PaperRecord, Profile

FIRST = "Anna Ben Chen Dmitri Eva Farid Grace Hiro Ines Jonas Kofi Lena Marco Nadia Omar Priya Rui Sofia Tomas Yuki"
LAST = "Smith Müller García Wang Kim Novak Rossi Silva Kowalski Ivanov Haddad Sato Dubois Jensen Okafor Patel Ngata"


def main() -> None:
    parser = argparse.ArgumentParser(description="digestd ranking at scale")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--sweep", action="store_true", help="run the scaling table, each case in its own process")
    parser.add_argument("--encoder", action="store_true", help="rank with (random) sentence-encoder vectors")
    args = parser.parse_args()
    if args.sweep:
        sweep()
    else:
        run(args.subscribers, args.papers, args.encoder)


def sweep() -> None:
    cases = [(10_000, 2_000), (100_000, 2_000), (100_000, 500), (100_000, 10_000)]
    for subscribers, papers in cases:
        command = [sys.executable, "-m", "bench.scale", "--subscribers", str(subscribers), "--papers", str(papers)]
        subprocess.run(command, check=True)


def run(subscribers: int, papers: int, encoder: bool = False) -> None:
    corpus = sorted(load_corpus(), key=lambda paper: (paper.published is not None, paper.published, paper.id))
    window, history = with_authors(corpus[-papers:]), corpus[:-papers]
    profiles = make_profiles(subscribers, window, history, np.random.default_rng(7))
    referenced = {paper_id for profile in profiles for paper_id in profile.seeds}
    seeds = [paper for paper in history if paper.id in referenced]
    vectors = queries = None
    if encoder:
        vectors = random_vectors([paper.id for paper in (*window, *seeds)])
        queries = random_vectors(sorted({profile.keyword_query for profile in profiles if profile.keywords}))
    before = peak_mb()
    cpu = cpu_seconds()
    started = time.perf_counter()
    prepared = prepare_window(window, referenced=seeds, vectors=vectors)
    prepared_at = time.perf_counter()
    now = datetime(2026, 7, 1, 8)
    digests = build_digests(prepared, profiles, period_start=now, period_end=now, now=now, query_vectors=queries)
    finished = time.perf_counter()
    cpu = cpu_seconds() - cpu
    picks = sum(len(digest.picks) for digest in digests)
    print(
        f"subscribers={subscribers:>7,} papers={len(window):>6,} referenced={len(seeds):>5,} | "
        f"prepare {prepared_at - started:5.1f} s + digests {finished - prepared_at:5.1f} s = "
        f"{finished - started:5.1f} s | peak RSS {peak_mb():,.0f} MB (before ranking {before:,.0f} MB) | "
        f"{picks / max(len(digests), 1):.1f} picks/digest, {len(prepared.labels):,} label phrases | "
        f"CPU {cpu:.1f} s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        + (" | with encoder vectors" if encoder else "")
    )


def random_vectors(keys: list[str], dimensions: int = 384) -> dict[str, np.ndarray]:
    """A unit vector per key, as a sentence encoder gives (all-MiniLM-L6-v2: 384 dimensions)."""
    rows = np.random.default_rng(11).standard_normal((len(keys), dimensions)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return dict(zip(keys, rows, strict=True))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def with_authors(papers: list[PaperRecord]) -> list[PaperRecord]:
    rng = np.random.default_rng(3)
    names = [f"{first} {last}" for first in FIRST.split() for last in LAST.split()]
    return [replace(paper, authors=tuple(rng.choice(names, size=rng.integers(1, 8)))) for paper in papers]


def make_profiles(count: int, window: list[PaperRecord], history: list[PaperRecord], rng) -> list[Profile]:
    topics = top_terms([paper.text for paper in history + window])
    words = sorted({term for terms in topics for term in terms if " " not in term})
    names = [f"{first[0]}. {last}" for first in FIRST.split() for last in LAST.split()]
    categories = sorted({category for paper in window for category in paper.categories})
    profiles = []
    for number in range(count):
        terms = topics[rng.integers(len(topics))]
        keywords = rng.choice(terms, size=min(len(terms), rng.integers(3, 11)), replace=False)
        chosen = rng.choice(categories, size=rng.integers(1, 3)) if rng.random() < 0.3 else ()
        profiles.append(
            Profile(
                subscriber_id=number,
                email=f"reader{number}@example.org",
                keywords=tuple(Keyword(str(term)) for term in keywords),
                excluded=tuple(rng.choice(words, size=rng.integers(1, 4))) if rng.random() < 0.3 else (),
                categories=tuple(str(category) for category in chosen),
                category_filter=bool(len(chosen)) and rng.random() < 0.17,
                authors=tuple(rng.choice(names, size=rng.integers(1, 4))) if rng.random() < 0.2 else (),
                seeds=tuple(history[i].id for i in rng.choice(len(history), size=rng.integers(0, 6))),
                already_sent=frozenset(history[i].id for i in rng.choice(len(history), size=rng.integers(0, 200)))
                if rng.random() < 0.5
                else frozenset(),
                max_papers=int(rng.choice([10, 20, 20, 30])),
            )
        )
    return profiles


def top_terms(texts: list[str], per_paper: int = 15) -> list[list[str]]:
    """The best TF-IDF terms of each paper: what its author might type as keywords."""
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), stop_words="english", min_df=5, token_pattern=r"(?u)\b[a-zA-Z]{3,}\b"
    )
    matrix = vectorizer.fit_transform(texts).tocsr()
    names = vectorizer.get_feature_names_out()
    result = []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        best = matrix.indices[start:end][np.argsort(-matrix.data[start:end])[:per_paper]]
        if len(best) >= 3:
            result.append([str(names[column]) for column in best])
    return result


if __name__ == "__main__":
    main()
