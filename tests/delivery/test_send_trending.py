"""A trending subscriber through the real send path: a digest of the popular papers, never twice."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import replace
from datetime import timedelta
from typing import Any

from seeds import DUE, T0, make_papers, make_settings
from sinks import Sink
from sqlalchemy import Engine
from sqlmodel import select

from digestd.config import Settings
from digestd.delivery.send import send_due
from digestd.mail.render import make_email_builder
from digestd.models import Delivery
from digestd.store import open_session, save_papers
from digestd.subscribers import SubscriberInput, add_subscriber


def test_a_trending_subscriber_gets_the_popular_papers_and_never_twice(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    seen = T0 + timedelta(days=1)
    papers = [replace(paper, popularity=(i * 37) % 101) for i, paper in enumerate(make_papers(12, seen=seen))]
    with open_session(engine) as session:
        save_papers(session, papers, now=seen)
        given = SubscriberInput(email="ada@example.org", trending=True, max_papers=3)
        add_subscriber(session, given, defaults=Settings().digest, now=T0)
    settings = make_settings(sink)
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)

    def send(now: Any) -> list[str]:
        asyncio.run(send_due(engine, settings, builder, clock=lambda: now, stop=asyncio.Event()))
        with open_session(engine) as session:
            rows = session.scalars(select(Delivery).order_by(Delivery.id)).all()
            return list(rows[-1].paper_ids) if rows else []

    first = send(DUE + timedelta(minutes=1))
    by_votes = sorted(papers, key=lambda paper: -(paper.popularity or 0))
    # the most upvoted, with variety (a near twin of a pick may give way to the next); in sections' order
    assert len(first) == 3 and by_votes[0].id in first and set(first) <= {paper.id for paper in by_votes[:4]}
    (message,) = sink.handler.messages
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert "upvotes on Hugging Face" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with open_session(engine) as session:  # a week later, with the same window: nothing is sent again
        save_papers(session, papers, now=DUE + timedelta(days=6))
    second = send(DUE + timedelta(days=7, minutes=1))
    assert not set(second) & set(first)
