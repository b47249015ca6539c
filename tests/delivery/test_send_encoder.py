"""A send, a dry run and a preview with `[encoder] model` set (the real all-MiniLM-L6-v2):
the vectors reach ranking and are stored; an encoder that fails is logged once and the
digests still go out, ranked without it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from seeds import DUE, make_settings, seed_database
from sqlalchemy import Engine, func
from sqlmodel import col, select

from digestd import api
from digestd.config import EncoderSettings, Settings
from digestd.delivery.send import SendReport, plan_due, preview_due, send_due
from digestd.delivery.worker import run_worker
from digestd.embedding.encoder import Encoder, encoder_identity
from digestd.embedding.stored import count_embedded
from digestd.embedding.vectors import query_key
from digestd.mail.render import make_email_builder
from digestd.models import TextVector
from digestd.store import open_session

LATER = DUE + timedelta(minutes=1)
QUERY = "graph neural networks, diffusion models"  # seed_database's keywords, as `Profile.keyword_query`


def run_send(engine: Engine, settings: Settings) -> SendReport:
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    return asyncio.run(send_due(engine, settings, builder, clock=lambda: LATER, stop=asyncio.Event()))


def stored_keys(engine: Engine, settings: EncoderSettings) -> set[str]:
    with engine.connect() as connection:
        query = select(TextVector.key).where(col(TextVector.encoder) == encoder_identity(settings))
        return set(connection.scalars(query))


def encoder_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ranking without the sentence encoder" in r.getMessage()]


def test_a_send_with_the_encoder_ranks_with_vectors_and_stores_them(
    engine: Engine, start_sink: Any, encoder_settings: EncoderSettings, caplog: pytest.LogCaptureFixture
) -> None:
    seed_database(engine, subscribers=3)
    settings = replace(make_settings(start_sink()), encoder=encoder_settings)
    with caplog.at_level(logging.WARNING):
        report = run_send(engine, settings)
    assert (report.planned, report.sent) == (3, 3)
    assert not encoder_failures(caplog), "every window paper had its vector"
    with open_session(engine) as session:
        assert count_embedded(session, encoder_identity(encoder_settings)) == (40, 40)
    assert query_key(QUERY) in stored_keys(engine, encoder_settings)


def test_an_encoder_that_fails_is_logged_once_and_the_digests_still_go_out(
    engine: Engine, start_sink: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, encoder_model: str
) -> None:
    # encoder_model: sentence-transformers must be there for the model to be what fails
    seed_database(engine, subscribers=4)
    folder = tmp_path / "no-model-here"
    folder.mkdir()
    settings = make_settings(start_sink(), batch_size=2)  # two batches: the second must not try again
    settings = replace(settings, encoder=EncoderSettings(model=str(folder)))
    with caplog.at_level(logging.WARNING):
        report = run_send(engine, settings)
    assert (report.planned, report.sent) == (4, 4)
    failures = encoder_failures(caplog)
    assert len(failures) == 1 and "cannot be loaded" in failures[0]
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(TextVector)) == 0


def test_a_dry_run_and_a_preview_use_the_encoder(
    engine: Engine, start_sink: Any, encoder_settings: EncoderSettings, caplog: pytest.LogCaptureFixture
) -> None:
    emails = seed_database(engine, subscribers=2)
    settings = make_settings(start_sink())
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    with caplog.at_level(logging.WARNING):
        jobs = preview_due(engine, builder, now=LATER, encoder=Encoder(encoder_settings))
        with_encoder = api.preview_digest(engine, emails[0], now=LATER, encoder=Encoder(encoder_settings))
    assert len(jobs) == 2 and all(job.email is not None for job in jobs)
    assert with_encoder.picks and not encoder_failures(caplog)
    without = api.preview_digest(engine, emails[0], now=LATER)
    scores = {pick.paper.id: pick.score for pick in with_encoder.picks}
    assert scores != {pick.paper.id: pick.score for pick in without.picks}, "the vectors changed the ranking"
    reused = Encoder(encoder_settings)
    api.preview_digest(engine, emails[0], now=LATER, encoder=reused)
    assert reused.encoded == 0, "the dry run stored what it embedded"


@pytest.mark.slow
def test_render_processes_embed_too(engine: Engine, start_sink: Any, encoder_settings: EncoderSettings) -> None:
    """A render process makes its own encoder from the settings (and loads the model itself)."""
    seed_database(engine, subscribers=4)
    settings = replace(make_settings(start_sink(), batch_size=2, render_processes=1), encoder=encoder_settings)
    assert run_send(engine, settings).sent == 4
    with open_session(engine) as session:
        assert count_embedded(session, encoder_identity(encoder_settings)) == (40, 40)
    assert query_key(QUERY) in stored_keys(engine, encoder_settings)


@pytest.mark.postgres
def test_a_worker_embeds_on_postgresql(pg: Engine, start_sink: Any, encoder_settings: EncoderSettings) -> None:
    seed_database(pg, subscribers=4)
    settings = replace(make_settings(start_sink(), batch_size=2), encoder=encoder_settings)
    assert plan_due(pg, now=LATER) == 4
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    state = asyncio.run(
        run_worker(pg, settings, builder, clock=lambda: LATER, stop=asyncio.Event(), exit_when_idle=True)
    )
    assert state.report.sent == 4 and state.cache.encoder is not None
    with open_session(pg) as session:
        assert count_embedded(session, encoder_identity(encoder_settings)) == (40, 40)


def test_an_encoder_that_failed_is_tried_again_in_the_next_run(
    engine: Engine, tmp_path: Path, encoder_model: str, caplog: pytest.LogCaptureFixture
) -> None:
    # encoder_model: sentence-transformers must be there for the model to be what fails
    from digestd.delivery.batches import PeriodCache

    seed_database(engine, subscribers=1)
    with open_session(engine) as session:
        papers = api.load_candidates(session, start=DUE - timedelta(days=30), end=LATER)
    folder = tmp_path / "not-yet-downloaded"
    folder.mkdir()
    encoder = Encoder(EncoderSettings(model=str(folder)))
    period = (DUE - timedelta(days=30), LATER)
    cache = PeriodCache(papers={period: papers}, referenced=[], encoder=encoder)
    with caplog.at_level(logging.WARNING):
        assert cache.embed(engine, period, []) is None
        assert cache.embed(engine, period, []) is None  # the same run: not tried (nor logged) again
    assert len(encoder_failures(caplog)) == 1
    following = cache.fresh()  # a worker's next run: a passing failure must not last its whole life
    assert following.encoder is encoder and not following.encoder_failed
