"""Hugging Face daily papers (`https://huggingface.co/api/daily_papers?date=YYYY-MM-DD`).

The response is a JSON list of daily-paper objects whose `paper` holds the arXiv id,
title, abstract (`summary`), authors and `upvotes` (kept as `popularity`). Since 2025 a
paper may also carry `ai_summary` and `ai_keywords` (written by Hugging Face's model);
both are kept, separately from the abstract. Both the 2024 and the 2026 shapes parse.

Each run asks for every day from the stored cursor (the last day fetched) to today, at
most `MAX_DAYS` of them; today is asked again next run, because the list grows all day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from digestd.errors import SourceError
from digestd.identity import canonical_id, clean_text, excerpt, split_arxiv_id
from digestd.ingest.sources.documents import parse_day, parse_json
from digestd.records import PaperRecord

if TYPE_CHECKING:
    from digestd.config import SourceSettings
    from digestd.ingest.sources.fetch import Fetcher
    from digestd.ingest.sources.harvest import Harvest

DEFAULT_URL = "https://huggingface.co/api/daily_papers"
MAX_DAYS = 7


def _authors(paper: Mapping[str, Any]) -> tuple[str, ...]:
    names = (clean_text(a.get("name")) for a in paper.get("authors") or [] if isinstance(a, Mapping))
    return tuple(name for name in names if name)


def parse_daily_item(item: Mapping[str, Any], *, source: str) -> PaperRecord:
    """One daily-paper object → a `PaperRecord`; `ValueError` when it lacks an id or title."""
    inner = item.get("paper")
    paper: Mapping[str, Any] = inner if isinstance(inner, Mapping) else item
    found = split_arxiv_id(str(paper.get("id") or ""))
    if found is None:
        raise ValueError(f"paper id {paper.get('id')!r} is not an arXiv id")
    title = clean_text(paper.get("title") or item.get("title"))
    if not title:
        raise ValueError(f"paper {found[0]} has no title")
    upvotes = paper.get("upvotes")
    if isinstance(upvotes, float) and not math.isfinite(upvotes):
        upvotes = None
    keywords = paper.get("ai_keywords") or []
    return PaperRecord(
        id=canonical_id(arxiv_id=found[0]),
        title=title,
        abstract=clean_text(paper.get("summary") or item.get("summary")),
        authors=_authors(paper),
        published=parse_day(paper.get("publishedAt") or item.get("publishedAt")),
        abs_url=f"https://arxiv.org/abs/{found[0]}",
        pdf_url=f"https://arxiv.org/pdf/{found[0]}",
        source=source,
        popularity=int(upvotes) if isinstance(upvotes, int | float) else None,
        ai_summary=clean_text(paper.get("ai_summary")) or None,
        ai_keywords=tuple(clean_text(str(k)) for k in keywords if str(k).strip()),
    )


def parse_daily_papers(content: bytes, *, source: str) -> list[PaperRecord]:
    """A daily-papers response → papers; `SourceError` if the document or any item is unusable."""
    what = f"source {source}"
    items = parse_json(content, what=what)
    if isinstance(items, Mapping) and "error" in items:
        raise SourceError(f"{what}: Hugging Face answered with an error: {excerpt(str(items['error']))}")
    if not isinstance(items, list):
        raise SourceError(f"{what}: expected a JSON list of daily papers, got {type(items).__name__}")
    records, errors = [], []
    for number, item in enumerate(items, start=1):
        try:
            if not isinstance(item, Mapping):
                raise ValueError("not an object")
            records.append(parse_daily_item(item, source=source))
        except ValueError as error:
            errors.append(f"item {number}: {error}")
    if errors:
        shown = excerpt("; ".join(errors[:5]), 300)
        raise SourceError(f"{what}: {len(errors)} unusable item(s), nothing imported: {shown}")
    return records


def days_to_fetch(cursor: str | None, today: date) -> list[date]:
    """From the stored day (or yesterday) to today, at most `MAX_DAYS`."""
    try:
        start = date.fromisoformat(cursor) if cursor else today - timedelta(days=1)
    except ValueError:
        start = today - timedelta(days=1)
    start = max(start, today - timedelta(days=MAX_DAYS - 1))
    return [start + timedelta(days=n) for n in range((today - start).days + 1)]


def fetch_hf_daily(fetcher: Fetcher, settings: SourceSettings, harvest: Harvest, *, now: datetime) -> None:
    url = settings.url or DEFAULT_URL
    days = days_to_fetch(harvest.cursor, now.date())
    for day in days:
        response = fetcher.fetch(
            url, params={"date": day.isoformat()}, timeout=settings.timeout_seconds, deadline=settings.deadline_seconds
        )
        harvest.add(parse_daily_papers(response.content, source=settings.name))
    harvest.cursor = days[-1].isoformat()
    if not harvest.records:
        harvest.note(f"no daily papers listed for {days[0]}..{days[-1]} (normal on weekends)")
