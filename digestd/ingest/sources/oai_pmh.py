"""arXiv OAI-PMH (`ListRecords`, `metadataPrefix=arXiv`): bulk, incremental harvesting.

A source's `url` is the OAI endpoint (`https://oaipmh.arxiv.org/oai`, formerly
`http://export.arxiv.org/oai2`) and its `query` the set (`cs`, `physics:astro-ph`; empty
for everything). The stored cursor is either `token:<resumptionToken>` (a harvest cut
short by `max_results` or `max_pages`, continued next run) or `from:<YYYY-MM-DD>` (the
day the last complete harvest started; the next one asks for records changed since then).

A repository that hands out a resumption token it gave before is going round in circles:
the run stops there with an error rather than asking for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from digestd.errors import SourceError
from digestd.identity import canonical_id, excerpt, normalise_doi
from digestd.ingest.sources.documents import parse_day, parse_xml, text_of
from digestd.records import PaperRecord

if TYPE_CHECKING:
    from digestd.config import SourceSettings
    from digestd.ingest.sources.fetch import Fetcher
    from digestd.ingest.sources.harvest import Harvest

OAI = "{http://www.openarchives.org/OAI/2.0/}"
ARXIV = "{http://arxiv.org/OAI/arXiv/}"
FIRST_HARVEST_DAYS = 2


@dataclass(frozen=True)
class OaiPage:
    records: list[PaperRecord]
    token: str | None  # None: the list is complete
    deleted: int = 0


def _authors(meta: ElementTree.Element) -> tuple[str, ...]:
    names = []
    for author in meta.iterfind(f"{ARXIV}authors/{ARXIV}author"):
        parts = [text_of(author.find(f"{ARXIV}{part}")) for part in ("forenames", "keyname", "suffix")]
        names.append(" ".join(part for part in parts if part))
    return tuple(names)


def parse_metadata(meta: ElementTree.Element, *, source: str) -> PaperRecord:
    """One `<arXiv>` metadata element → a `PaperRecord` (OAI gives no version number)."""
    arxiv_id = text_of(meta.find(f"{ARXIV}id"))
    categories = tuple(text_of(meta.find(f"{ARXIV}categories")).split())
    updated = parse_day(text_of(meta.find(f"{ARXIV}updated")))
    paper_id = canonical_id(arxiv_id=arxiv_id)
    return PaperRecord(
        id=paper_id,
        title=text_of(meta.find(f"{ARXIV}title")),
        abstract=text_of(meta.find(f"{ARXIV}abstract")),
        authors=_authors(meta),
        categories=categories,
        primary_category=categories[0] if categories else None,
        published=parse_day(text_of(meta.find(f"{ARXIV}created"))),
        updated=datetime(updated.year, updated.month, updated.day, tzinfo=UTC) if updated else None,
        doi=normalise_doi(text_of(meta.find(f"{ARXIV}doi"))),
        abs_url=f"https://arxiv.org/abs/{paper_id}",
        pdf_url=f"https://arxiv.org/pdf/{paper_id}",
        source=source,
    )


def _check_errors(root: ElementTree.Element, what: str) -> bool:
    """True when the repository says there is nothing to list; raises for real errors."""
    errors = root.findall(f"{OAI}error")
    if any(error.get("code") == "noRecordsMatch" for error in errors):
        return True
    if errors:
        message = excerpt("; ".join(f"{e.get('code')}: {text_of(e)}" for e in errors), 200)
        raise SourceError(f"{what}: the OAI-PMH repository answered with an error: {message}")
    return False


def parse_list_records(content: bytes, *, source: str) -> OaiPage:
    """A `ListRecords` response → its papers and the resumption token, if any."""
    what = f"source {source}"
    root = parse_xml(content, what=what)
    if root.tag != f"{OAI}OAI-PMH":
        raise SourceError(f"{what}: expected an OAI-PMH document, got <{root.tag}>")
    if _check_errors(root, what):
        return OaiPage(records=[], token=None)
    listing = root.find(f"{OAI}ListRecords")
    if listing is None:
        raise SourceError(f"{what}: the OAI-PMH response has no ListRecords")
    records, deleted = [], 0
    for record in listing.iterfind(f"{OAI}record"):
        meta = record.find(f"{OAI}metadata/{ARXIV}arXiv")
        if meta is None:
            deleted += 1  # a deleted record, or another metadata format
            continue
        records.append(parse_metadata(meta, source=source))
    token = text_of(listing.find(f"{OAI}resumptionToken")) or None
    return OaiPage(records=records, token=token, deleted=deleted)


def _first_params(settings: SourceSettings, cursor: str | None, now: datetime) -> dict[str, str]:
    if cursor and cursor.startswith("token:"):
        return {"verb": "ListRecords", "resumptionToken": cursor.removeprefix("token:")}
    since = cursor.removeprefix("from:") if cursor else (now - timedelta(days=FIRST_HARVEST_DAYS)).date().isoformat()
    params = {"verb": "ListRecords", "metadataPrefix": "arXiv", "from": since}
    if settings.query:
        params["set"] = settings.query
    return params


def fetch_oai_pmh(fetcher: Fetcher, settings: SourceSettings, harvest: Harvest, *, now: datetime) -> None:
    """Harvest pages until the list ends, `max_results` papers are in or `max_pages` pages
    were asked for; keep the cursor. A resumption token seen before is an error."""
    params = _first_params(settings, harvest.cursor, now)
    seen = {params["resumptionToken"]} if "resumptionToken" in params else set()
    for _page in range(settings.max_pages):
        response = fetcher.fetch(
            settings.url,
            params=params,
            timeout=settings.timeout_seconds,
            deadline=settings.deadline_seconds,
            polite=True,
        )
        page = parse_list_records(response.content, source=settings.name)
        harvest.add(page.records)
        if page.token is None:
            harvest.cursor = f"from:{now.date().isoformat()}"
            return
        if page.token in seen:
            raise SourceError(
                f"source {settings.name}: the OAI-PMH repository sent resumption token "
                f"{excerpt(page.token, 60)!r} again, after {harvest.pages} page(s); the harvest stopped",
                hint="the repository is going round in circles; the next run starts again from the last complete one",
            )
        seen.add(page.token)
        harvest.cursor = f"token:{page.token}"
        if len(harvest.records) >= settings.max_results:
            harvest.note(f"stopped at max_results={settings.max_results}; the next run continues")
            return
        params = {"verb": "ListRecords", "resumptionToken": page.token}
    harvest.note(f"stopped after {settings.max_pages} pages (max_pages); the next run continues")
