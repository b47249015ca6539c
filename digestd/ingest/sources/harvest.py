"""`Harvest`: what one source run brought back, before anything is saved.

A kind's `fetch_*` function starts from the stored validators and cursor and fills in
papers, new validators, the next cursor and a note. Ingest saves it all in one
transaction, or nothing when the fetch or the parse failed half-way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from digestd.ingest.sources.fetch import Response
from digestd.records import PaperRecord


@dataclass
class Harvest:
    source: str
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    records: list[PaperRecord] = field(default_factory=list)
    pages: int = 0
    not_modified: bool = False
    notes: list[str] = field(default_factory=list)

    def add(self, records: Iterable[PaperRecord], *, pages: int = 1) -> None:
        self.records.extend(records)
        self.pages += pages

    def remember(self, response: Response) -> None:
        """Keep the response's validators for the next conditional GET."""
        if response.not_modified:
            self.not_modified = True
            return
        self.etag = response.etag
        self.last_modified = response.last_modified

    def note(self, text: str) -> None:
        self.notes.append(text)
