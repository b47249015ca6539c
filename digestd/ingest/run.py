"""Ingest: run sources, merge duplicates, save papers; one transaction per source run.

A source run fetches and parses everything first (no database access), then saves the
papers together with the source's new state (validators, cursor, counts) in a single
transaction: a document that fails half-way writes no paper and moves no cursor. A
failure is recorded in `SourceState` (a readable one-line message, when, how many times
in a row, and when to try again) and never stops the other sources.

Only http(s) links are kept (`web_link`), here, for every source and file: a
`javascript:` or `data:` link never reaches a digest; each one dropped is counted. An
entry whose text holds a control character (a NUL in a JSON feed: PostgreSQL cannot store
it, and no reader wants it) is dropped and counted, and the rest of its feed is saved.

With a sentence encoder (`[encoder] model`), the papers a run stored are embedded after
it (`embedding.vectors`), so that a send does not pay for them; an encoder that fails is
logged and never fails the ingest (the send embeds what is missing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from digestd.config import IngestSettings, Settings, SourceSettings
from digestd.embedding.encoder import Encoder, explain
from digestd.errors import DigestdError, EncoderError, InputError, SourceError
from digestd.identity import excerpt, web_link
from digestd.ingest.sources.arxiv_api import fetch_arxiv_api
from digestd.ingest.sources.arxiv_rss import fetch_arxiv_rss
from digestd.ingest.sources.bodies import MB
from digestd.ingest.sources.fetch import Fetcher, RetryLaterError
from digestd.ingest.sources.files import load_paper_file
from digestd.ingest.sources.harvest import Harvest
from digestd.ingest.sources.hf_daily import fetch_hf_daily
from digestd.ingest.sources.oai_pmh import fetch_oai_pmh
from digestd.ingest.sources.rss import fetch_rss
from digestd.models import SourceState
from digestd.records import PaperRecord
from digestd.store import load_papers_by_id, open_session, save_papers
from digestd.validation import control_character

log = logging.getLogger(__name__)

RETRY_BASE = timedelta(minutes=5)  # wait after the first failed run; doubles per failure
RETRY_CAP = timedelta(hours=6)
RETRY_AFTER_CAP = timedelta(days=7)  # the longest server-requested rest honoured
ERROR_LENGTH = 300  # characters of an error message kept for `status`

Progress = Callable[[str], None]


@dataclass(frozen=True)
class IngestReport:
    """What one source run did."""

    source: str
    seen: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = None
    notes: tuple[str, ...] = ()
    not_modified: bool = False
    deferred_until: datetime | None = None  # not run: backing off after failures
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return self.seen - self.new - self.updated

    @property
    def ok(self) -> bool:
        return self.error is None and self.deferred_until is None

    def summary(self) -> str:
        """One line for the operator."""
        if self.deferred_until is not None:
            return f"{self.source}: not run, backing off after failures until {self.deferred_until:%Y-%m-%d %H:%M} UTC"
        if self.error is not None:
            return f"{self.source}: FAILED: {self.error}"
        counts = (
            "not modified since the last run"
            if self.not_modified
            else (f"{self.seen} papers read, {self.new} new, {self.updated} updated, {self.skipped} unchanged")
        )
        notes = "".join(f"; {note}" for note in self.notes)
        return f"{self.source}: {counts}{notes} ({self.seconds:.1f} s)"


def keep_web_links(records: list[PaperRecord]) -> tuple[list[PaperRecord], str | None]:
    """The records with every link that is not http(s) removed, and a note counting them."""
    kept, dropped = [], 0
    for record in records:
        abs_url, pdf_url = web_link(record.abs_url), web_link(record.pdf_url)
        dropped += (bool(record.abs_url) and abs_url is None) + (bool(record.pdf_url) and pdf_url is None)
        unchanged = (abs_url, pdf_url) == (record.abs_url, record.pdf_url)
        kept.append(record if unchanged else replace(record, abs_url=abs_url, pdf_url=pdf_url))
    return kept, (f"{dropped} link(s) other than http(s) dropped" if dropped else None)


def keep_storable(records: list[PaperRecord]) -> tuple[list[PaperRecord], str | None]:
    """The records whose text every database can store, and a note counting the others."""
    kept = [record for record in records if not _has_control_character(record)]
    dropped = len(records) - len(kept)
    if not dropped:
        return records, None
    entries = "1 entry" if dropped == 1 else f"{dropped} entries"
    return kept, f"{entries} dropped: a control character in their text"


def _has_control_character(record: PaperRecord) -> bool:
    """White space of any kind is fine (the sources fold it); NUL and the like are not."""
    texts = (record.id, record.title, record.abstract, record.doi, record.primary_category, record.ai_summary)
    lists = (record.authors, record.categories, record.ai_keywords)
    every = [text for text in texts if text] + [text for items in lists for text in items]
    return any(control_character(text, lines=True) for text in every)


def ingest_file(engine: Engine, path: Path, *, now: datetime, encoder: Encoder | None = None) -> IngestReport:
    """Import a JSONL/JSON/CSV paper file; a file with a bad row imports nothing. `encoder`:
    the papers are embedded then."""
    records, links_note = keep_web_links(load_paper_file(path, source=f"file:{path.name}"))
    with open_session(engine) as session:
        new, updated = save_papers(session, records, now=now)
    if new or updated:
        embed_papers(engine, encoder, records)
    notes = (links_note,) if links_note else ()
    report = IngestReport(source=f"file:{path.name}", seen=len(records), new=new, updated=updated, notes=notes)
    log.info("ingested %s: %d papers, %d new, %d updated", path, report.seen, report.new, report.updated)
    return report


def embed_papers(engine: Engine, encoder: Encoder | None, records: Sequence[PaperRecord]) -> None:
    """Embed the stored papers of `records` that have no vector yet (or whose text changed);
    an encoder that fails is logged, never raised: the papers are stored, the send embeds them."""
    if encoder is None or not records:
        return
    from digestd.embedding.vectors import paper_vectors  # here: NumPy

    try:
        with open_session(engine) as session:
            stored = load_papers_by_id(session, [record.id for record in records])
        paper_vectors(engine, encoder, stored)
    except EncoderError as error:
        log.error("papers stored but not embedded: %s", explain(error))


def collect_harvest(fetcher: Fetcher, source: SourceSettings, harvest: Harvest, *, now: datetime) -> None:
    """Fetch and parse one source into `harvest` (network only, no database)."""
    kind = source.kind
    if kind == "arxiv-rss":
        fetch_arxiv_rss(fetcher, source, harvest)
    elif kind == "arxiv-api":
        fetch_arxiv_api(fetcher, source, harvest)
    elif kind == "hf-daily":
        fetch_hf_daily(fetcher, source, harvest, now=now)
    elif kind == "rss":
        fetch_rss(fetcher, source, harvest)
    elif kind == "oai-pmh":
        fetch_oai_pmh(fetcher, source, harvest, now=now)
    elif kind == "file":
        harvest.add(load_paper_file(Path(source.path).expanduser(), source=source.name))
    else:
        raise SourceError(f"source {source.name}: unknown kind {kind!r}")


def select_sources(sources: Sequence[SourceSettings], names: Iterable[str] | None) -> list[SourceSettings]:
    """The configured sources named (all when `names` is None); an unknown name is an error."""
    if names is None:
        return list(sources)
    by_name = {source.name: source for source in sources}
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        known = ", ".join(by_name) or "none configured"
        raise InputError(f"unknown source {unknown[0]!r}; known sources: {known}", hint="sources come from [[sources]]")
    return [by_name[name] for name in wanted]


def make_fetcher(settings: IngestSettings) -> Fetcher:
    """The fetcher for a process: share it between source runs so per-host spacing holds."""
    if not settings.contact:
        log.warning("ingest.contact is not set: feed owners cannot reach you (arXiv asks for a contact)")
    return Fetcher(
        contact=settings.contact,
        max_response_bytes=settings.max_response_mb * MB,
        max_decompressed_bytes=settings.max_decompressed_mb * MB,
    )


def run_sources(
    engine: Engine,
    settings: Settings,
    *,
    names: Iterable[str] | None = None,
    now: datetime,
    progress: Progress | None = None,
    fetcher: Fetcher | None = None,
    force: bool = False,
    encoder: Encoder | None = None,
) -> list[IngestReport]:
    """Run the configured sources (or those named), each in its own transaction; `encoder`
    embeds the papers each run stored.

    A source that failed recently is skipped until its backoff has passed, unless `force`."""
    chosen = select_sources(settings.sources, names)
    client = fetcher or make_fetcher(settings.ingest)
    try:
        return [
            run_source(engine, client, source, now=now, progress=progress, force=force, encoder=encoder)
            for source in chosen
        ]
    finally:
        if fetcher is None:
            client.close()


def run_source(
    engine: Engine,
    fetcher: Fetcher,
    source: SourceSettings,
    *,
    now: datetime,
    progress: Progress | None,
    force: bool,
    encoder: Encoder | None = None,
) -> IngestReport:
    """One source run: fetch, parse, then save papers and state together (or record the failure)."""
    started = time.perf_counter()
    with open_session(engine) as session:
        harvest, deferred = _start_harvest(session, source, now=now)
    if deferred is not None and not force:
        log.info("source %s backs off until %s", source.name, deferred)
        return IngestReport(source=source.name, deferred_until=deferred)
    if progress:
        progress(f"{source.name} ({source.kind}): fetching ...")
    try:
        collect_harvest(fetcher, source, harvest, now=now)
        harvest.records, links_note = keep_web_links(harvest.records)
        harvest.records, storable_note = keep_storable(harvest.records)
        for note in (links_note, storable_note):
            if note:
                harvest.note(note)
        with open_session(engine, immediate=True) as session:
            new, updated = save_papers(session, harvest.records, now=now)
            _record_success(session, source, harvest, now=now, new=new, updated=updated)
    except Exception as error:  # one source must never stop the others
        message = _error_message(source, error)
        failures = _record_failure(engine, source, message, error, now=now)
        log.warning("source %s failed (%d in a row): %s", source.name, failures, message)
        return IngestReport(source=source.name, error=message, seconds=time.perf_counter() - started)
    if new or updated:
        if progress and encoder is not None:
            progress(f"{source.name}: embedding the new papers ...")
        embed_papers(engine, encoder, harvest.records)
    report = IngestReport(
        source=source.name,
        seen=len(harvest.records),
        new=new,
        updated=updated,
        notes=tuple(harvest.notes),
        not_modified=harvest.not_modified,
        seconds=time.perf_counter() - started,
    )
    log.info("%s", report.summary())
    return report


def _error_message(source: SourceSettings, error: Exception) -> str:
    """One short line: what operators see in the log and in `status` (remote text included
    only as an excerpt, never control characters)."""
    if isinstance(error, DigestdError):
        text = error.message.removeprefix(f"source {source.name}: ")
        return excerpt(f"{text} (hint: {error.hint})" if error.hint else text, ERROR_LENGTH)
    log.exception("source %s: unexpected error", source.name)
    return excerpt(f"internal error while ingesting: {type(error).__name__}: {error}", ERROR_LENGTH)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _state(session: Session, source: SourceSettings) -> SourceState:
    state = session.get(SourceState, source.name)
    if state is None:
        state = SourceState(name=source.name, kind=source.kind)
        session.add(state)
    if state.kind != source.kind:  # the kind changed in the config: old validators mean nothing
        state.kind, state.etag, state.last_modified, state.cursor = source.kind, None, None, None
    return state


def _start_harvest(session: Session, source: SourceSettings, *, now: datetime) -> tuple[Harvest, datetime | None]:
    state = session.get(SourceState, source.name)
    if state is None or state.kind != source.kind:
        return Harvest(source=source.name), None
    harvest = Harvest(source=source.name, etag=state.etag, last_modified=state.last_modified, cursor=state.cursor)
    next_attempt = _as_utc(state.next_attempt_at)
    return harvest, next_attempt if next_attempt is not None and next_attempt > now else None


def _record_success(
    session: Session, source: SourceSettings, harvest: Harvest, *, now: datetime, new: int, updated: int
) -> None:
    state = _state(session, source)
    if not harvest.not_modified:
        state.etag, state.last_modified = harvest.etag, harvest.last_modified
    state.cursor = harvest.cursor
    state.last_run_at = state.last_success_at = now
    state.last_new, state.last_updated, state.last_seen = new, updated, len(harvest.records)
    state.total_new += new
    state.consecutive_failures = 0
    state.next_attempt_at = None
    state.last_note = "; ".join(harvest.notes) or ("not modified" if harvest.not_modified else None)


def retry_delay(failures: int, error: Exception) -> timedelta:
    """How long to leave a failing source alone: the server's Retry-After, else doubling from 5 min."""
    backoff = min(RETRY_BASE * 2 ** max(failures - 1, 0), RETRY_CAP)
    if isinstance(error, RetryLaterError):  # bounded again here: a timedelta overflows past 2.7 million years
        return max(timedelta(seconds=min(error.retry_after, RETRY_AFTER_CAP.total_seconds())), RETRY_BASE)
    return backoff


def _record_failure(engine: Engine, source: SourceSettings, message: str, error: Exception, *, now: datetime) -> int:
    with open_session(engine, immediate=True) as session:
        state = _state(session, source)
        state.last_run_at = state.last_error_at = now
        state.last_error = message
        state.last_new = state.last_updated = state.last_seen = 0
        state.consecutive_failures += 1
        state.next_attempt_at = now + retry_delay(state.consecutive_failures, error)
        state.last_note = None
        return state.consecutive_failures
