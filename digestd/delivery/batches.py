"""Build a claimed batch's emails: load what ranking needs, rank, render.

Claims are grouped by period, so subscribers who share a period share one window. The
candidates and the window of a period are kept for the whole run (`PeriodCache`): a run
of 10,000 subscribers in 100-claim batches vectorises the papers once, not 100 times.

Whatever goes wrong with one row's data (a bad value in the database, a template that
fails on that subscriber, an address that cannot be written) fails that row alone: its
`Job` carries the reason, the sender records it `perm_failed`, and the rest of the batch
goes on. A batch that fails is built again one row at a time to find the row at fault.
Trouble that is not a row's (the database, memory) still stops the batch.

With a sentence encoder configured (`[encoder] model`), the vectors of a period's papers
and of each batch's keyword queries are loaded (or embedded and stored) with the rest; if
the encoder fails, that is logged once and the run ranks without it: digests still go out.

`RenderPool` does the same in other processes (`smtp.render_processes`), so that the
process holding the SMTP connections spends its time sending: ranking and rendering cost
about as much CPU per message as the SMTP exchange itself.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from digestd import api
from digestd.config import Settings
from digestd.delivery.claims import Claim
from digestd.embedding.encoder import Encoder, open_encoder
from digestd.errors import DigestdError, RenderError, StoreError
from digestd.mail.render import EmailBuilder, RenderedEmail, make_email_builder
from digestd.models import Subscriber
from digestd.records import Digest, PaperRecord, Profile
from digestd.schedule import local_day
from digestd.store import make_engine, open_session
from digestd.subscribers import load_profiles

log = logging.getLogger(__name__)

PeriodKey = tuple[datetime, datetime]
T = TypeVar("T")
R = TypeVar("R")
_REASON_LIMIT = 500  # characters of a row's failure kept in the ledger (and shown by `status`)


@dataclass(frozen=True)
class Job:
    claim: Claim
    email: RenderedEmail | None  # None: nothing matched and empty digests are not sent, or `failure`
    failure: str = ""  # why this row's message cannot be built: it fails alone


@dataclass(frozen=True)
class PeriodBatch:
    """The claims of a batch that share a period, with what ranking needs for them."""

    claims: list[Claim]
    profiles: list[Profile]
    # each digest's date: where its subscriber lives, the day its period ends (when it is sent)
    days: list[str] = field(default_factory=list)
    failed: list[Job] = field(default_factory=list)  # claims whose data could not be loaded
    query_vectors: Mapping[str, Any] | None = None  # keyword query → vector; None: no encoder


def row_failure(error: Exception) -> str | None:
    """Why one row's message cannot be built, or None when `error` is not that row's doing
    (the database is unreachable or locked, memory ran out): then it is raised, the batch
    stops and its claims go back."""
    if isinstance(error, SQLAlchemyError | StoreError | MemoryError):
        return None
    what = error.message if isinstance(error, DigestdError) else f"{type(error).__name__}: {error}"
    return f"cannot build this message: {what}"[:_REASON_LIMIT]


def each_alone(items: Sequence[T], build: Callable[[Sequence[T]], Sequence[R]]) -> list[R | str]:
    """`build(items)`: one result per item. If one item's data makes it fail, each item is
    built alone, so that only the items that fail alone fail: their result is the reason."""
    try:
        return list(build(items))
    except Exception as error:
        reason = row_failure(error)
        if reason is None:
            raise
        if len(items) == 1:
            log.debug("%s", reason, exc_info=True)
            return [reason]
    results: list[R | str] = []
    for item in items:
        results.extend(each_alone([item], build))
    return results


@dataclass
class PeriodCache:
    """Candidates and the prepared window per period, for one run.

    A period's window holds the seed and rated papers of every active subscriber (loaded
    once per run), so every batch of that period shares it: preparing a window (TF-IDF,
    latent space, label phrases) takes seconds, and must not happen once per batch."""

    papers: dict[PeriodKey, list[PaperRecord]] = field(default_factory=dict)
    paper_ids: dict[PeriodKey, frozenset[str]] = field(default_factory=dict)  # the candidates' ids
    windows: dict[PeriodKey, Any] = field(default_factory=dict)
    referenced: list[PaperRecord] | None = None
    readers: dict[PeriodKey, dict[str, int]] = field(default_factory=dict)  # for trending (`ranking.trending`)
    encoder: Encoder | None = None  # `[encoder]`; None: none configured
    encoder_failed: bool = False  # it failed in this run (the next run, `fresh()`, tries again)
    vectors: dict[PeriodKey, Mapping[str, Any]] = field(default_factory=dict)  # paper id → vector, per period

    def window(self, batch: PeriodBatch) -> Any:
        period = (batch.claims[0].period_start, batch.claims[0].period_end)
        if period not in self.windows:
            from digestd.ranking.digest import prepare_window  # here: scikit-learn is slow to import

            papers, readers = self.papers[period], self.readers.get(period)
            vectors = self.vectors.get(period)
            self.windows[period] = prepare_window(
                papers, referenced=self.referenced or (), readers=readers, vectors=vectors
            )
        return self.windows[period]

    def fresh(self) -> PeriodCache:
        """An empty cache for the next run, keeping the encoder (and its loaded model): one that
        failed in this run is tried again (a passing failure must not turn it off for a worker's life)."""
        return PeriodCache(encoder=self.encoder)

    def embed(self, engine: Engine, period: PeriodKey, profiles: Sequence[Profile]) -> Mapping[str, Any] | None:
        """Load (or embed) the vectors of `period`'s papers, once, and the profiles' keyword
        query vectors; None without an encoder. An `EncoderError` (or the database refusing the
        vectors) is logged once and turns the encoder off for this run: ranking goes on without
        it, windows already built with vectors included (no period is ranked two ways)."""
        if self.encoder is None or self.encoder_failed:
            return None
        from digestd.embedding.vectors import or_without_encoder, paper_vectors, query_vectors  # here: NumPy

        encoder = self.encoder

        def period_and_queries() -> Mapping[str, Any]:
            if period not in self.vectors:
                papers = [*self.papers[period], *(self.referenced or ())]
                self.vectors[period] = paper_vectors(engine, encoder, papers)
            return query_vectors(engine, encoder, [profile.keyword_query for profile in profiles])

        found = or_without_encoder(period_and_queries)
        if found is None:
            self.encoder_failed = True
            self.vectors.clear()
            self.windows = {period: window for period, window in self.windows.items() if not window.encoded}
        return found


def load_batch(engine: Engine, claims: Sequence[Claim], cache: PeriodCache) -> list[PeriodBatch]:
    """The batch grouped by period: claims and profiles (candidates and referenced papers
    go to the cache, once per run)."""
    groups: dict[tuple[datetime, datetime], list[Claim]] = {}
    for claim in claims:
        groups.setdefault((claim.period_start, claim.period_end), []).append(claim)
    loaded = []
    with open_session(engine) as session:
        if cache.referenced is None:
            cache.referenced = api.referenced_by_active(session)
        for (start, end), members in groups.items():
            if (start, end) not in cache.papers:
                cache.papers[(start, end)] = api.load_candidates(session, start=start, end=end)
                cache.paper_ids[(start, end)] = frozenset(paper.id for paper in cache.papers[(start, end)])
                # Only trending needs them (sent_paper has no index by paper alone: a scan per 500 ids)
                if api.anyone_trending(session):
                    cache.readers[(start, end)] = api.count_readers(session, sorted(cache.paper_ids[(start, end)]))
            loaded.append(_load_period(session, members, sent_among=cache.paper_ids[(start, end)]))
    # After the session: embedding what is not stored yet may take a while
    return [
        replace(batch, query_vectors=cache.embed(engine, period, batch.profiles)) if batch.claims else batch
        for period, batch in zip(groups, loaded, strict=True)
    ]


def _load_period(session: Session, claims: Sequence[Claim], *, sent_among: frozenset[str]) -> PeriodBatch:
    """The profiles of claims that share a period; a claim whose rows cannot be loaded fails alone."""

    def load(some: Sequence[Claim]) -> list[tuple[Profile, str]]:
        ids = [c.subscriber_id for c in some]
        subscribers = {s.id: s for s in session.scalars(select(Subscriber).where(col(Subscriber.id).in_(ids)))}
        profiles = load_profiles(session, [subscribers[i] for i in ids], sent_among=sent_among)
        days = [local_day(c.period_end, subscribers[c.subscriber_id].timezone) for c in some]
        return list(zip(profiles, days, strict=True))

    batch = PeriodBatch([], [])
    for claim, loaded in zip(claims, each_alone(claims, load), strict=True):
        if isinstance(loaded, str):
            batch.failed.append(Job(claim, None, loaded))
        else:
            batch.claims.append(claim)
            batch.profiles.append(loaded[0])
            batch.days.append(loaded[1])
    return batch


def build_jobs(
    builder: EmailBuilder, loaded: Sequence[PeriodBatch], cache: PeriodCache, *, now: datetime, send_empty: bool
) -> list[Job]:
    """Rank and render the loaded batch (no database, no network)."""
    jobs = []
    for batch in loaded:
        jobs.extend(batch.failed)
        if batch.claims:  # the window holds the period's papers, shared by every row: not one row's fault
            jobs.extend(_build_period(builder, batch, cache.window(batch), now=now, send_empty=send_empty))
    return jobs


def _build_period(
    builder: EmailBuilder, batch: PeriodBatch, window: Any, *, now: datetime, send_empty: bool
) -> list[Job]:
    """Rank and render the claims of one period; a row that cannot be ranked or rendered fails alone."""
    from digestd.ranking.digest import build_digests  # here: scikit-learn is slow to import

    start, end = batch.claims[0].period_start, batch.claims[0].period_end

    def rank(profiles: Sequence[Profile]) -> list[Digest]:
        queries = batch.query_vectors
        return build_digests(window, profiles, period_start=start, period_end=end, now=now, query_vectors=queries)

    def render(triples: Sequence[tuple[Claim, Digest, str]]) -> list[RenderedEmail]:
        return [
            builder.build(digest, period=claim.period, day=day, now=now, delivery_id=claim.delivery_id)
            for claim, digest, day in triples
        ]

    jobs, to_render = [], []
    for claim, digest, day in zip(batch.claims, each_alone(batch.profiles, rank), batch.days, strict=True):
        if isinstance(digest, str):
            jobs.append(Job(claim, None, digest))
        elif digest.is_empty and not send_empty:
            jobs.append(Job(claim, None))
        else:
            to_render.append((claim, digest, day))
    for (claim, _, _), email in zip(to_render, each_alone(to_render, render), strict=True):
        jobs.append(Job(claim, None, email) if isinstance(email, str) else Job(claim, email))
    return jobs


def can_share(engine: Engine) -> bool:
    """Whether another process can open this engine's database (not an in-memory SQLite)."""
    return engine.dialect.name != "sqlite" or engine.url.database not in (None, "", ":memory:")


class RenderPool:
    """Loads, ranks and renders claimed batches in `processes` other processes.

    Each process opens the database itself and keeps its own `PeriodCache`, so a claim
    list goes in and finished emails come out. The processes are started fresh ("spawn"):
    the sending process has threads, which `fork` would copy in an unknown state."""

    def __init__(self, engine: Engine, settings: Settings, processes: int) -> None:
        url = engine.url.render_as_string(hide_password=False)
        self.executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_renderer,
            initargs=(url, settings),
        )
        log.debug("ranking and rendering in %d other process(es)", processes)

    async def build(self, claims: list[Claim], *, now: datetime, send_empty: bool, eight_bit: bool) -> list[Job]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, _render_claims, claims, now, send_empty, eight_bit)
        except BrokenProcessPool:
            raise RenderError(
                "a render process died (out of memory?); the claimed digests go back to the queue",
                hint="run again; set smtp.render_processes = 0 to render in the sending process",
            ) from None

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


# One render process's state: its engine, email builder and period cache, or the error
# that kept it from starting (raised with the first batch, so the sender reports it).
_renderer: tuple[Engine, EmailBuilder, PeriodCache] | DigestdError | None = None
_PARENT_CHECK_SECONDS = 0.5
_MAX_WINDOWS = 4  # periods kept by a render process; a run rarely has more than one or two


def _start_renderer(url: str, settings: Settings) -> None:
    global _renderer
    # The sending process decides when to stop (SIGTERM, Ctrl-C reach the whole group) and
    # then shuts the pool down; a render process must not die half way through a batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        builder = make_email_builder(settings.mail, secret_key=settings.secret_key, web=settings.web)
        _renderer = (make_engine(url), builder, PeriodCache(encoder=open_encoder(settings.encoder)))
    except DigestdError as error:
        _renderer = error


def _exit_with_parent(parent: int) -> None:
    """A pool's processes wait for work forever; if the sending process was killed
    (SIGKILL, out of memory), nothing would ever tell them to stop."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(0)


def _render_claims(claims: list[Claim], now: datetime, send_empty: bool, eight_bit: bool) -> list[Job]:
    global _renderer
    if isinstance(_renderer, DigestdError):
        raise _renderer
    assert _renderer is not None, "the pool's initializer sets this"
    engine, builder, cache = _renderer
    if len(cache.windows) >= _MAX_WINDOWS:
        cache = cache.fresh()
        _renderer = (engine, builder, cache)
    builder = builder.for_relay(eight_bit=eight_bit)
    return build_jobs(builder, load_batch(engine, claims, cache), cache, now=now, send_empty=send_empty)
