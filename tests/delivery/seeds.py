"""Test data: papers, subscribers and settings on a fixed calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sinks import Sink
from sqlalchemy import Engine

from digestd.config import MailSettings, Settings
from digestd.records import PaperRecord
from digestd.store import open_session, save_papers
from digestd.subscribers import SubscriberInput, add_subscriber

# The first Monday digest of a weekly subscriber added at T0 is due at 2026-11-30 08:00 UTC.
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRET = "test-secret-key-of-32-characters"


def make_papers(count: int, *, seen: datetime) -> list[PaperRecord]:
    topics = ["graph neural networks", "diffusion models", "quantum error correction", "dark matter halos"]
    return [
        PaperRecord(
            id=f"2611.{i:05d}",
            title=f"On {topics[i % 4]}: study {i}",
            abstract=f"We study {topics[i % 4]} in setting {i}. " * 8,
            authors=("Ada Lovelace", "Emmy Noether"),
            categories=("cs.LG",),
            published=seen.date(),
        )
        for i in range(count)
    ]


def seed_database(engine: Engine, *, subscribers: int, papers: int = 40) -> list[str]:
    """`subscribers` weekly subscribers (added at T0) and `papers` papers first seen at T0 + 1 day."""
    emails = [f"reader{i:03d}@example.org" for i in range(subscribers)]
    with open_session(engine) as session:
        save_papers(session, make_papers(papers, seen=T0 + timedelta(days=1)), now=T0 + timedelta(days=1))
        for email in emails:
            given = SubscriberInput(email=email, keywords="graph neural networks, diffusion models")
            add_subscriber(session, given, defaults=Settings().digest, now=T0)
    return emails


def make_settings(sink: Sink, **smtp: Any) -> Settings:
    mail = MailSettings(from_="Paper Digest <digest@example.org>", base_url="https://digest.example.org")
    return Settings(mail=mail, smtp=sink.smtp_settings(**smtp), secret_key=SECRET)


DUE = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
