"""Ingest: run sources, merge duplicates, save papers; one transaction per source run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from digestd.sources.files import load_paper_file
from digestd.store import open_session, save_papers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    """What one source run did."""

    source: str
    seen: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = None

    @property
    def skipped(self) -> int:
        return self.seen - self.new - self.updated


def ingest_file(engine: Engine, path: Path, *, now: datetime) -> IngestReport:
    """Import a JSONL/JSON/CSV paper file; a file with a bad row imports nothing."""
    records = load_paper_file(path, source=f"file:{path.name}")
    with open_session(engine) as session:
        new, updated = save_papers(session, records, now=now)
    report = IngestReport(source=f"file:{path.name}", seen=len(records), new=new, updated=updated)
    log.info("ingested %s: %d papers, %d new, %d updated", path, report.seen, report.new, report.updated)
    return report
