"""What every feed parser needs first: bytes → a checked document, or a readable `SourceError`.

Servers answer a feed URL with many things that are not the feed: an HTML error or login
page, a truncated body, a gzip file without a Content-Encoding header, JSON where XML
was expected. These helpers recognise them and say so in one line.

XML is parsed with the standard library (expat 2.4.1+ refuses entity expansion bombs;
ElementTree never fetches external entities). The document's own encoding declaration
is honoured, so ISO-8859-1 or Windows-1252 feeds read correctly.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from xml.etree import ElementTree

from digestd.config import IngestSettings
from digestd.errors import SourceError
from digestd.identity import excerpt
from digestd.ingest.sources.bodies import GZIP_MAGIC, MB, gunzip

_TAG = re.compile(r"<[^>]+>")
_HTML_START = re.compile(rb"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.I | re.S)
_HTML_TITLE = re.compile(rb"<title[^>]*>(.*?)(?:</title>|$)", re.IGNORECASE | re.DOTALL)
DEFAULT_MAX_DECOMPRESSED = IngestSettings().max_decompressed_mb * MB


def decompress_body(content: bytes, *, what: str, limit: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """The body itself, gunzipped (within `limit` bytes) when it is a gzip file served
    without Content-Encoding. The fetcher has already done this for what it fetched."""
    if content[:2] != GZIP_MAGIC:
        return content
    return gunzip(content, limit=limit, what=what)


def check_not_html(content: bytes, *, what: str) -> None:
    """Raise when the server sent a web page (an error or login page) instead of a feed."""
    if _HTML_START.match(content[:2048]):
        match = _HTML_TITLE.search(content[:4096])
        title = excerpt(clean_html(match.group(1).decode("utf-8", "replace"))) if match else ""
        shown = f" ({title!r})" if title else ""
        raise SourceError(
            f"{what}: the server sent an HTML page{shown} instead of a feed",
            hint="check the source's url; the site may be down or the address may have moved",
        )


def parse_xml(content: bytes, *, what: str) -> ElementTree.Element:
    """The root element of an XML document, or `SourceError` saying why it is not one."""
    content = decompress_body(content, what=what)
    if not content.strip():
        raise SourceError(f"{what}: the response is empty (expected an XML document)")
    check_not_html(content, what=what)
    try:
        return ElementTree.fromstring(content)
    except ElementTree.ParseError as error:
        line, column = error.position
        reason = str(error).split(":")[0]
        if reason in ("no element found", "unclosed token") or line >= content.count(b"\n"):
            reason = f"{reason} (the document looks truncated)"
        raise SourceError(f"{what}: not a well-formed XML document: {reason} at line {line}, column {column}") from None


def parse_json(content: bytes, *, what: str) -> Any:
    """A decoded JSON document, or `SourceError`."""
    content = decompress_body(content, what=what)
    check_not_html(content, what=what)
    try:
        return json.loads(content)
    except UnicodeDecodeError as error:
        raise SourceError(f"{what}: the JSON is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise SourceError(f"{what}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None


def clean_html(text: str | None) -> str:
    """Plain text from a fragment of HTML: tags dropped, entities decoded, white space collapsed."""
    return " ".join(html.unescape(_TAG.sub(" ", text or "")).split())


def parse_timestamp(text: str | None) -> datetime | None:
    """An aware UTC datetime from ISO 8601 or RFC 822 text; None when empty or unreadable."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved across midnight UTC
        return None


def parse_day(text: str | None) -> date | None:
    """The date of a timestamp or of a plain `YYYY-MM-DD`, or None."""
    value = (text or "").strip()
    if len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    stamp = parse_timestamp(value)
    return stamp.date() if stamp else None


def text_of(element: ElementTree.Element | None) -> str:
    """The element's text with white space collapsed ('' for a missing element)."""
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())
