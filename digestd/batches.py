"""Build a claimed batch's emails: load what ranking needs, rank, render.

Claims are grouped by period, so subscribers who share a period share one window. The
candidates and the window of a period are kept for the whole run (`PeriodCache`): a run
of 10,000 subscribers in 100-claim batches vectorises the papers once, not 100 times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from digestd import api
from digestd.claims import Claim
from digestd.models import Subscriber
from digestd.records import PaperRecord, Profile
from digestd.render import EmailBuilder, RenderedEmail
from digestd.store import open_session
from digestd.subscribers import load_profiles

PeriodKey = tuple[datetime, datetime]


@dataclass(frozen=True)
class Job:
    claim: Claim
    email: RenderedEmail | None  # None: nothing matched, and empty digests are not sent


@dataclass(frozen=True)
class PeriodBatch:
    """The claims of a batch that share a period, with what ranking needs for them."""

    claims: list[Claim]
    profiles: list[Profile]


@dataclass
class PeriodCache:
    """Candidates and the prepared window per period, for one run.

    A period's window holds the seed and rated papers of every active subscriber (loaded
    once per run), so every batch of that period shares it: preparing a window (TF-IDF,
    latent space, clusters) takes seconds, and must not happen once per batch."""

    papers: dict[PeriodKey, list[PaperRecord]] = field(default_factory=dict)
    windows: dict[PeriodKey, Any] = field(default_factory=dict)
    referenced: list[PaperRecord] | None = None

    def window(self, batch: PeriodBatch) -> Any:
        period = (batch.claims[0].period_start, batch.claims[0].period_end)
        if period not in self.windows:
            from digestd.digest import prepare_window  # here: scikit-learn is slow to import

            self.windows[period] = prepare_window(self.papers[period], referenced=self.referenced or ())
        return self.windows[period]


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
            ids = [c.subscriber_id for c in members]
            subscribers = {s.id: s for s in session.scalars(select(Subscriber).where(col(Subscriber.id).in_(ids)))}
            profiles = load_profiles(session, [subscribers[i] for i in ids])
            if (start, end) not in cache.papers:
                cache.papers[(start, end)] = api.load_candidates(session, start=start, end=end)
            loaded.append(PeriodBatch(members, profiles))
    return loaded


def build_jobs(
    builder: EmailBuilder, loaded: Sequence[PeriodBatch], cache: PeriodCache, *, now: datetime, send_empty: bool
) -> list[Job]:
    """Rank and render the loaded batch (no database, no network)."""
    from digestd.digest import build_digests  # here: scikit-learn is slow to import

    jobs = []
    for batch in loaded:
        window = cache.window(batch)
        start, end = batch.claims[0].period_start, batch.claims[0].period_end
        digests = build_digests(window, batch.profiles, period_start=start, period_end=end, now=now)
        for claim, digest in zip(batch.claims, digests, strict=True):
            empty = digest.is_empty and not send_empty
            jobs.append(Job(claim, None if empty else builder.build(digest, period=claim.period, now=now)))
    return jobs
