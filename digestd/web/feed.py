"""A subscriber's digests as an Atom feed (RFC 4287), made with feedgen.

Ids are `urn:uuid:` names derived from the site, the subscriber's link key and the period,
so they stay the same however often the feed is read, and tell nothing about the
subscriber. Text that XML cannot carry (control characters from a paper title) is dropped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digestd.records import Digest

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class FeedEntry:
    period: str
    digest: Digest
    title: str
    view_url: str
    content_html: str


def feed_id(base_url: str, link_key: str, period: str = "") -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{base_url}|digests|{link_key}|{period}')}"


def build_atom_feed(
    *,
    title: str,
    author: str,
    base_url: str,
    link_key: str,
    feed_url: str,
    archive_url: str,
    entries: Sequence[FeedEntry],
    updated: datetime,
) -> bytes:
    """The feed document; `updated` counts when it has no entries (RFC 4287 needs one)."""
    from feedgen.feed import FeedGenerator  # lxml behind it: loaded when a feed is asked for

    feed = FeedGenerator()
    feed.id(feed_id(base_url, link_key))
    feed.title(xml_text(title))
    feed.author({"name": xml_text(author)})
    feed.link(href=feed_url, rel="self", type="application/atom+xml")
    feed.link(href=archive_url, rel="alternate", type="text/html")
    feed.updated(max([updated, *(e.digest.generated_at for e in entries if e.digest.generated_at)]))
    for entry in entries:
        item = feed.add_entry(order="append")
        item.id(feed_id(base_url, link_key, entry.period))
        item.title(xml_text(entry.title))
        sent = entry.digest.generated_at or updated
        item.updated(sent)
        item.published(sent)
        item.link(href=entry.view_url, rel="alternate", type="text/html")
        item.content(xml_text(entry.content_html), type="html")
    return bytes(feed.atom_str(pretty=True))
