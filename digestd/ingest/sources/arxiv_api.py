"""The arXiv API (`export.arxiv.org/api/query`): Atom responses, 2016 and current formats.

A source's `query` is an arXiv search query (`cat:cs.LG AND abs:diffusion`) or, with the
prefix `id_list:`, a comma-separated list of ids (`id_list:2401.01234,astro-ph/0601001`).
Results are paged with `start`/`max_results`, newest submissions first, at most
`max_results` papers per run. arXiv asks for one request every 3 seconds on a single
connection: `fetch.Fetcher` enforces that for this host.

The API reports a bad query as a feed with one entry titled "Error" (with HTTP 400);
that becomes a `SourceError` carrying arXiv's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from digestd.errors import SourceError
from digestd.identity import canonical_id, excerpt, normalise_doi, split_arxiv_id
from digestd.ingest.sources.documents import parse_day, parse_timestamp, parse_xml, text_of
from digestd.records import PaperRecord

if TYPE_CHECKING:
    from digestd.config import SourceSettings
    from digestd.ingest.sources.fetch import Fetcher
    from digestd.ingest.sources.harvest import Harvest

DEFAULT_URL = "https://export.arxiv.org/api/query"
PAGE_SIZE = 100  # papers per request; arXiv allows up to 2,000 but small pages fail less
ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"


class ArxivApiError(SourceError):
    """Raised when the arXiv API answers with its error feed (an entry titled "Error")."""


@dataclass(frozen=True)
class ApiPage:
    """One response: its papers and where it sits in the whole result."""

    records: list[PaperRecord]
    total: int
    start: int


def _error_message(entry: ElementTree.Element) -> str | None:
    entry_id = text_of(entry.find(f"{ATOM}id"))
    if "/api/errors" in entry_id or text_of(entry.find(f"{ATOM}title")) == "Error":
        return text_of(entry.find(f"{ATOM}summary")) or entry_id
    return None


def _links(entry: ElementTree.Element) -> tuple[str | None, str | None, str | None]:
    """(abs url, pdf url, doi from a `title="doi"` link)."""
    abs_url = pdf_url = doi = None
    for link in entry.findall(f"{ATOM}link"):
        href, title, rel = link.get("href"), link.get("title"), link.get("rel")
        if title == "pdf":
            pdf_url = href
        elif title == "doi":
            doi = (href or "").split("doi.org/", 1)[-1] or None
        elif rel == "alternate":
            abs_url = href
    return abs_url, pdf_url, doi


def parse_entry(entry: ElementTree.Element, *, source: str) -> PaperRecord:
    """One Atom `<entry>` → a `PaperRecord`."""
    raw_id = text_of(entry.find(f"{ATOM}id"))
    found = split_arxiv_id(raw_id)
    if found is None:
        raise SourceError(f"arXiv API entry {excerpt(raw_id)!r} has no arXiv id")
    arxiv_id, version = found
    abs_url, pdf_url, link_doi = _links(entry)
    doi = normalise_doi(text_of(entry.find(f"{ARXIV}doi")) or link_doi)
    primary = entry.find(f"{ARXIV}primary_category")
    categories = tuple(c.get("term", "") for c in entry.findall(f"{ATOM}category") if c.get("term"))
    return PaperRecord(
        id=canonical_id(arxiv_id=arxiv_id),
        title=text_of(entry.find(f"{ATOM}title")),
        abstract=text_of(entry.find(f"{ATOM}summary")),
        authors=tuple(text_of(a.find(f"{ATOM}name")) for a in entry.findall(f"{ATOM}author")),
        categories=categories,
        primary_category=primary.get("term") if primary is not None else (categories[0] if categories else None),
        published=parse_day(text_of(entry.find(f"{ATOM}published"))),
        updated=parse_timestamp(text_of(entry.find(f"{ATOM}updated"))),
        version=version,
        doi=doi,
        abs_url=abs_url or f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=pdf_url or f"https://arxiv.org/pdf/{arxiv_id}",
        source=source,
    )


def _count(root: ElementTree.Element, name: str, default: int) -> int:
    text = text_of(root.find(f"{OPENSEARCH}{name}"))
    try:
        return int(text)
    except ValueError:
        return default


def parse_api_response(content: bytes, *, source: str) -> ApiPage:
    """An API response → its papers; `SourceError` for arXiv's error feed or a broken document."""
    what = f"source {source}"
    root = parse_xml(content, what=what)
    if root.tag != f"{ATOM}feed":
        raise SourceError(f"{what}: expected an arXiv API Atom feed, got <{root.tag}>")
    entries = root.findall(f"{ATOM}entry")
    for entry in entries:
        message = _error_message(entry)
        if message:
            raise ArxivApiError(
                f"{what}: the arXiv API refused the query: {excerpt(message, 200)}", hint="check the source's query"
            )
    records = [parse_entry(entry, source=source) for entry in entries]
    total = _count(root, "totalResults", len(records))
    return ApiPage(records=records, total=total, start=_count(root, "startIndex", 0))


def query_params(query: str, *, start: int, page_size: int) -> dict[str, str]:
    """The request parameters for one page of `query`."""
    params = {"start": str(start), "max_results": str(page_size)}
    if query.startswith("id_list:"):
        params["id_list"] = ",".join(part.strip() for part in query.removeprefix("id_list:").split(","))
    else:
        params.update(search_query=query, sortBy="submittedDate", sortOrder="descending")
    return params


def fetch_arxiv_api(
    fetcher: Fetcher, settings: SourceSettings, harvest: Harvest, *, page_size: int = PAGE_SIZE
) -> None:
    """Page through the query's results (newest first) up to `max_results` papers, politely
    (whatever the host: a mirror or a proxy of the API gets the same spacing)."""
    if not settings.query:
        raise SourceError(f"source {settings.name}: an arxiv-api source needs a query", hint="e.g. query = 'cat:cs.LG'")
    url = settings.url or DEFAULT_URL
    page_size = min(settings.max_results, page_size)
    start = 0
    while start < settings.max_results:
        params = query_params(settings.query, start=start, page_size=page_size)
        response = fetcher.fetch(
            url,
            params=params,
            timeout=settings.timeout_seconds,
            deadline=settings.deadline_seconds,
            polite=True,
            accept_error_body=True,
        )
        if response.status >= 400:
            raise _http_error(response.content, response.status, source=settings.name, url=url)
        page = parse_api_response(response.content, source=settings.name)
        harvest.add(page.records, pages=1)
        start += len(page.records)
        if len(page.records) < page_size or start >= page.total:
            break
    del harvest.records[settings.max_results :]


def _http_error(content: bytes, status: int, *, source: str, url: str) -> SourceError:
    """arXiv's own explanation when the body is its error feed, else the bare HTTP status."""
    try:
        parse_api_response(content, source=source)
    except ArxivApiError as error:
        return error
    except SourceError:
        pass
    return SourceError(f"source {source}: HTTP {status} from {url}")
