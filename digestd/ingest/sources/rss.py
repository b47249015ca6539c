"""Any RSS 0.9x/1.0/2.0 or Atom feed (journals, bioRxiv/medRxiv, lab blogs), via feedparser.

Mapping: an arXiv abs/pdf link or `oai:arXiv.org:` id gives the arXiv id; else a DOI from
`prism:doi`, `dc:identifier`, a doi.org link or the entry id; else the paper is known by
its normalised title. Authors from `author`/`dc:creator`, categories from tags, the
abstract from the summary or content with HTML removed. Items without a title are
skipped (and counted); a date that cannot be read (`0000-00-00`) is left out (and
counted); a document that is not well-formed is rejected whole.

feedparser is only ever given bytes, never a URL: it must not fetch anything itself.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.sax import SAXParseException

import feedparser

from digestd.errors import SourceError
from digestd.identity import arxiv_id_from_link, canonical_id, normalise_doi, split_arxiv_id
from digestd.ingest.sources.documents import check_not_html, clean_html, decompress_body
from digestd.records import PaperRecord

if TYPE_CHECKING:
    from digestd.config import SourceSettings
    from digestd.ingest.sources.fetch import Fetcher
    from digestd.ingest.sources.harvest import Harvest

# feedparser's "bozo" exceptions that do not mean the document is broken
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


DATE_FIELDS = ("published", "updated")


@dataclass(frozen=True)
class FeedPage:
    records: list[PaperRecord]
    skipped: int = 0
    bad_dates: int = 0  # dates present but unreadable, left out


def field(entry: Mapping[str, Any], key: str) -> Any:
    """A raw entry value. Bypasses FeedParserDict's deprecated `updated` → `published`
    fallback (which warns), so each date is read only where the feed put it."""
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def load_feed(content: bytes, *, what: str) -> Any:
    """A parsed feed, or `SourceError` when the bytes are not a well-formed feed."""
    content = decompress_body(content, what=what)
    if not content.strip():
        raise SourceError(f"{what}: the response is empty (expected a feed)")
    check_not_html(content, what=what)
    parsed = feedparser.parse(content)
    error = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(error, _HARMLESS):
        raise SourceError(f"{what}: not a well-formed feed: {_describe(error)}")
    if not parsed.get("version") and not parsed.entries:
        raise SourceError(f"{what}: the response is not an RSS or Atom feed")
    return parsed


def _describe(error: Exception) -> str:
    """'no element found at line 18, column 0 (the document looks truncated)' from a SAX error."""
    if not isinstance(error, SAXParseException):
        return str(error)
    reason = error.getMessage()
    text = f"{reason} at line {error.getLineNumber()}, column {error.getColumnNumber()}"
    return f"{text} (the document looks truncated)" if reason in ("no element found", "unclosed token") else text


def stamp(entry: Mapping[str, Any], key: str) -> datetime | None:
    value = field(entry, key)
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (ValueError, OverflowError, OSError):  # feedparser reads "0000-00-00" as the year -1
        return None


def unreadable_dates(entries: list[Any]) -> int:
    """How many dates the entries carry that cannot be read (each is left out)."""
    return sum(1 for entry in entries for key in DATE_FIELDS if field(entry, key) and not stamp(entry, f"{key}_parsed"))


def note_bad_dates(harvest: Harvest, count: int) -> None:
    if count:
        harvest.note(f"{count} unreadable date(s) ignored")


def find_doi(entry: Mapping[str, Any]) -> str | None:
    candidates = [field(entry, "prism_doi"), field(entry, "dc_identifier"), field(entry, "id")]
    candidates += [link.get("href") for link in field(entry, "links") or [] if "doi.org/" in (link.get("href") or "")]
    for candidate in candidates:
        if candidate and ("doi" in str(candidate).lower() or str(candidate).startswith("10.")):
            doi = normalise_doi(str(candidate))
            if doi:
                return doi
    return None


def find_arxiv_id(entry: Mapping[str, Any]) -> tuple[str, int | None] | None:
    entry_id = str(field(entry, "id") or "")
    if entry_id.lower().startswith(("oai:arxiv.org:", "arxiv:")):
        return split_arxiv_id(entry_id)
    for link in [field(entry, "link"), *(link.get("href") for link in field(entry, "links") or [])]:
        found = arxiv_id_from_link(link or "")
        if found:
            return found
    return None


def abstract_of(entry: Mapping[str, Any]) -> str:
    content = field(entry, "content") or []
    text = field(entry, "summary") or (content[0].get("value") if content else "")
    return clean_html(text)


def parse_entry(entry: Mapping[str, Any], *, source: str) -> PaperRecord | None:
    """One feed entry → a `PaperRecord`; None when it has no title."""
    title = clean_html(field(entry, "title"))
    if not title:
        return None
    arxiv, doi = find_arxiv_id(entry), find_doi(entry)
    published = stamp(entry, "published_parsed") or stamp(entry, "updated_parsed")
    paper_id = canonical_id(arxiv_id=arxiv[0] if arxiv else None, doi=doi, title=title)
    return PaperRecord(
        id=paper_id,
        title=title,
        abstract=abstract_of(entry),
        authors=tuple(n for n in (clean_html(a.get("name")) for a in field(entry, "authors") or []) if n),
        categories=tuple(t.get("term") for t in field(entry, "tags") or [] if t.get("term")),
        published=published.date() if published else None,
        updated=stamp(entry, "updated_parsed"),
        version=arxiv[1] if arxiv else None,
        doi=doi,
        abs_url=field(entry, "link") or None,
        source=source,
    )


def parse_rss(content: bytes, *, source: str) -> FeedPage:
    """An RSS/Atom document → papers (items without a title are skipped and counted)."""
    parsed = load_feed(content, what=f"source {source}")
    records = [parse_entry(entry, source=source) for entry in parsed.entries]
    kept = [record for record in records if record is not None]
    return FeedPage(records=kept, skipped=len(records) - len(kept), bad_dates=unreadable_dates(parsed.entries))


def fetch_feed(fetcher: Fetcher, settings: SourceSettings, harvest: Harvest) -> bytes | None:
    """The feed's bytes, or None when the server says nothing changed (304)."""
    response = fetcher.fetch(
        settings.url,
        etag=harvest.etag,
        last_modified=harvest.last_modified,
        timeout=settings.timeout_seconds,
        deadline=settings.deadline_seconds,
    )
    harvest.remember(response)
    harvest.pages += 1
    return None if response.not_modified else response.content


def fetch_rss(fetcher: Fetcher, settings: SourceSettings, harvest: Harvest) -> None:
    content = fetch_feed(fetcher, settings, harvest)
    if content is None:
        return
    page = parse_rss(content, source=settings.name)
    harvest.add(page.records, pages=0)
    if page.skipped:
        harvest.note(f"{page.skipped} item(s) without a title skipped")
    note_bad_dates(harvest, page.bad_dates)
