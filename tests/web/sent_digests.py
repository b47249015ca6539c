"""Digests sent for real, for the pages that show them: papers in the store, a subscriber's
digest planned, rendered and mailed by `send_due` to an SMTP sink, recorded in the ledger."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from digestd.config import Settings, SmtpSettings
from digestd.delivery.send import SendReport, send_due
from digestd.mail.render import make_email_builder
from digestd.records import PaperRecord
from digestd.store import open_session, save_papers

TOPICS = ("graph neural networks", "diffusion models", "protein folding")


def make_papers(prefix: str, count: int, *, seen: datetime) -> list[PaperRecord]:
    return [
        PaperRecord(
            id=f"{prefix}.{i:05d}",
            title=f"On {TOPICS[i % 3]}: study {i}",
            abstract=f"We study {TOPICS[i % 3]} in setting {i}. " * 6,
            authors=("Ada Lovelace", "Emmy Noether"),
            categories=("cs.LG",),
            published=seen.date(),
        )
        for i in range(count)
    ]


def send_digest(
    engine: Engine, settings: Settings, smtp: SmtpSettings, *, due: datetime, prefix: str = "2611", papers: int = 6
) -> SendReport:
    """Store `papers` new papers seen an hour before `due`, then send what is due a minute after."""
    with open_session(engine, immediate=True) as session:
        save_papers(session, make_papers(prefix, papers, seen=due - timedelta(hours=1)), now=due - timedelta(hours=1))
    settings = replace(settings, smtp=smtp)
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    now = due + timedelta(minutes=1)

    def send() -> SendReport:
        return asyncio.run(send_due(engine, settings, builder, clock=lambda: now, stop=asyncio.Event()))

    with ThreadPoolExecutor(1) as thread:  # its own thread: Playwright's sync API runs a loop in this one
        return thread.submit(send).result()
