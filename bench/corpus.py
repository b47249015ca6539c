"""Load the shared arXiv corpus (`../shared/data/abstracts.jsonl.gz`) as `PaperRecord`s."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

from digestd.records import PaperRecord

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "abstracts.jsonl.gz"


def load_corpus(path: Path = CORPUS) -> list[PaperRecord]:
    """Every paper of the corpus, in file order."""
    if not path.exists():
        raise SystemExit(f"corpus not found at {path}: the benchmarks need ../shared/data next to the checkout")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [_record(json.loads(line)) for line in handle]


def _record(row: dict) -> PaperRecord:
    return PaperRecord(
        id=row["id"],
        title=row["title"],
        abstract=row["abstract"],
        authors=tuple(row.get("authors") or ()),
        categories=tuple(row["categories"]),
        primary_category=row.get("primary_category"),
        published=date.fromisoformat(row["published"]) if row.get("published") else None,
        source=row.get("source", ""),
    )
