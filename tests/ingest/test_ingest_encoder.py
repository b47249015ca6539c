"""A source run with the sentence encoder (the real all-MiniLM-L6-v2): the papers it stores
are embedded after it, a paper already embedded is not embedded again, and an encoder that
fails never fails the run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from digestd.config import EncoderSettings, Settings, SourceSettings
from digestd.demo import SAMPLE_PAPERS
from digestd.embedding.encoder import Encoder
from digestd.embedding.stored import count_embedded
from digestd.ingest.run import run_sources
from digestd.store import open_session

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SETTINGS = Settings(sources=(SourceSettings(name="lab", kind="file", path=str(SAMPLE_PAPERS)),))


def test_a_source_run_embeds_the_papers_it_stored(engine: Engine, encoder_settings: EncoderSettings) -> None:
    encoder = Encoder(encoder_settings)
    [report] = run_sources(engine, SETTINGS, now=NOW, encoder=encoder)
    assert report.ok and report.new > 0
    with open_session(engine) as session:
        assert count_embedded(session, encoder.identity) == (report.new, report.new)
    assert encoder.encoded == report.new
    [again] = run_sources(engine, SETTINGS, now=NOW + timedelta(hours=1), encoder=encoder)
    assert again.ok and encoder.encoded == report.new, "known papers, same text: nothing embedded again"


def test_an_encoder_that_fails_never_fails_the_run(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "no-model-here"
    folder.mkdir()
    encoder = Encoder(EncoderSettings(model=str(folder)))
    with caplog.at_level(logging.ERROR):
        [report] = run_sources(engine, SETTINGS, now=NOW, encoder=encoder)
    assert report.ok and report.new > 0
    assert any("papers stored but not embedded" in r.getMessage() for r in caplog.records)
    with open_session(engine) as session:
        assert count_embedded(session, encoder.identity) == (0, report.new)
