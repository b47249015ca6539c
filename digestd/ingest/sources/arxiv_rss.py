"""arXiv listing feeds: `https://rss.arxiv.org/rss/<cat>[+<cat>...]` (RSS 2.0) and
`/atom/...` (Atom), plus the legacy `export.arxiv.org/rss/<cat>` RSS 1.0/RDF format.

The current feeds mark each item with `<arxiv:announce_type>`: `new`, `cross` (a
cross-list from another category), `replace` (a new version) or `replace-cross`.
`include_cross_lists` and `include_replacements` choose which are kept (a
`replace-cross` needs both). Descriptions read "arXiv:2401.01234v1 Announce Type: new
Abstract: ..."; the prefix is removed. The legacy format gives the primary category and
"UPDATED" in the title ("Title. (arXiv:1808.09955v1 [astro-ph.IM])") but never marks a
cross-list: an item whose primary category lies outside the feed's own (its channel
title, "cs updates on arXiv.org") is one.

The feeds are empty on weekends and arXiv holidays: that is a normal, empty run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from digestd.errors import SourceError
from digestd.identity import canonical_id, excerpt, normalise_doi, split_arxiv_id
from digestd.ingest.sources.documents import clean_html
from digestd.ingest.sources.rss import fetch_feed, field, load_feed, note_bad_dates, stamp, unreadable_dates
from digestd.records import PaperRecord

if TYPE_CHECKING:
    from digestd.config import SourceSettings
    from digestd.ingest.sources.fetch import Fetcher
    from digestd.ingest.sources.harvest import Harvest

NEW, CROSS, REPLACE, REPLACE_CROSS = "new", "cross", "replace", "replace-cross"
_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*[\w-]+\s*(?:Abstract:\s*)?", re.IGNORECASE)
_LEGACY_TITLE = re.compile(r"^(?P<title>.*?)\.?\s*\(arXiv:(?P<id>\S+) \[(?P<cat>[^\]]+)\](?: (?P<kind>[A-Z ]+))?\)\s*$")
_LEGACY_KINDS = {"": NEW, "CROSS LISTED": CROSS, "UPDATED": REPLACE}
_LEGACY_CHANNEL = re.compile(r"^\s*(?P<cats>\S+) updates on arXiv\.org\s*$", re.IGNORECASE)
_AUTHOR_SPLIT = re.compile(r",\s*(?:and\s+)?|\s+and\s+")


@dataclass(frozen=True)
class ListingPage:
    records: list[PaperRecord]
    skipped: int = 0  # cross-lists / replacements left out by the options
    empty: bool = False  # the feed listed nothing at all (weekend, holiday)
    bad_dates: int = 0  # dates present but unreadable, left out


def wanted(announce_type: str, *, include_cross_lists: bool, include_replacements: bool) -> bool:
    if announce_type == CROSS:
        return include_cross_lists
    if announce_type == REPLACE:
        return include_replacements
    if announce_type == REPLACE_CROSS:
        return include_cross_lists and include_replacements
    return True


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for author in field(entry, "authors") or []:
        names += [n.strip() for n in _AUTHOR_SPLIT.split(clean_html(author.get("name"))) if n.strip()]
    return tuple(names)


def _record(entry: Mapping[str, Any], found: tuple[str, int | None], **fields: Any) -> PaperRecord:
    paper_id = canonical_id(arxiv_id=found[0])
    published = stamp(entry, "published_parsed") or stamp(entry, "updated_parsed")
    values: dict[str, Any] = {
        "id": paper_id,
        "authors": _authors(entry),
        "published": published.date() if published else None,
        "version": found[1],
        "abs_url": f"https://arxiv.org/abs/{paper_id}",
        "pdf_url": f"https://arxiv.org/pdf/{paper_id}",
    }
    return PaperRecord(**(values | fields))


def parse_current_entry(entry: Mapping[str, Any], *, source: str) -> tuple[str, PaperRecord]:
    """(announce type, paper) from an rss.arxiv.org RSS 2.0 or Atom item."""
    found = split_arxiv_id(str(field(entry, "id") or "")) or split_arxiv_id(str(field(entry, "link") or ""))
    if found is None:
        raise SourceError(f"source {source}: item {excerpt(str(field(entry, 'title')))!r} has no arXiv id")
    categories = tuple(t.get("term") for t in field(entry, "tags") or [] if t.get("term"))
    record = _record(
        entry,
        found,
        title=clean_html(field(entry, "title")),
        abstract=_PREFIX.sub("", clean_html(field(entry, "summary"))),
        categories=categories,
        primary_category=categories[0] if categories else None,
        doi=normalise_doi(field(entry, "arxiv_doi")),
        source=source,
    )
    return str(field(entry, "arxiv_announce_type") or NEW).strip().lower(), record


def legacy_feed_categories(channel: Mapping[str, Any]) -> tuple[str, ...]:
    """The categories or archives a legacy feed lists (`cs`, `cs.LG`, `astro-ph+hep-th`), from
    its channel title; () when the title does not say."""
    match = _LEGACY_CHANNEL.match(clean_html(field(channel, "title")))
    return tuple(match.group("cats").split("+")) if match else ()


def _in_feed(category: str, feed_categories: tuple[str, ...]) -> bool:
    return not feed_categories or any(category == c or category.startswith(f"{c}.") for c in feed_categories)


def parse_legacy_entry(
    entry: Mapping[str, Any], *, source: str, feed_categories: tuple[str, ...] = ()
) -> tuple[str, PaperRecord]:
    """(announce type, paper) from an RSS 1.0/RDF item whose title carries id and kind; an
    item from outside `feed_categories` is a cross-list."""
    title = clean_html(field(entry, "title"))
    match = _LEGACY_TITLE.match(title)
    found = split_arxiv_id(match.group("id")) if match else None
    if match is None or found is None:
        raise SourceError(f"source {source}: legacy item title {excerpt(title)!r} does not name an arXiv id")
    category = match.group("cat")
    record = _record(
        entry,
        found,
        title=match.group("title").strip(),
        abstract=clean_html(field(entry, "summary")),
        categories=(category,),
        primary_category=category,
        source=source,
    )
    kind = _LEGACY_KINDS.get((match.group("kind") or "").strip(), NEW)
    if not _in_feed(category, feed_categories):
        kind = {NEW: CROSS, REPLACE: REPLACE_CROSS}.get(kind, kind)
    return kind, record


def parse_arxiv_listing(
    content: bytes, *, source: str, include_cross_lists: bool = True, include_replacements: bool = False
) -> ListingPage:
    """A listing feed (any of the three formats) → the papers the options ask for."""
    parsed = load_feed(content, what=f"source {source}")
    legacy = parsed.get("version") == "rss10"
    feed_categories = legacy_feed_categories(parsed.feed) if legacy else ()
    records, skipped = [], 0
    channel_day = stamp(parsed.feed, "updated_parsed")
    for entry in parsed.entries:
        if legacy:
            kind, record = parse_legacy_entry(entry, source=source, feed_categories=feed_categories)
        else:
            kind, record = parse_current_entry(entry, source=source)
        if record.published is None and channel_day is not None:
            record = replace(record, published=channel_day.date())
        if wanted(kind, include_cross_lists=include_cross_lists, include_replacements=include_replacements):
            records.append(record)
        else:
            skipped += 1
    return ListingPage(
        records=records, skipped=skipped, empty=not parsed.entries, bad_dates=unreadable_dates(parsed.entries)
    )


def fetch_arxiv_rss(fetcher: Fetcher, settings: SourceSettings, harvest: Harvest) -> None:
    content = fetch_feed(fetcher, settings, harvest)
    if content is None:
        return
    page = parse_arxiv_listing(
        content,
        source=settings.name,
        include_cross_lists=settings.include_cross_lists,
        include_replacements=settings.include_replacements,
    )
    harvest.add(page.records, pages=0)
    if page.empty:
        harvest.note("the feed lists no papers today (normal on weekends and arXiv holidays)")
    if page.skipped:
        harvest.note(f"{page.skipped} cross-list/replacement item(s) left out by the source's options")
    note_bad_dates(harvest, page.bad_dates)
