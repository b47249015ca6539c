"""`digestd papers embed` and `digestd ingest` with `[encoder] model` set (the real
all-MiniLM-L6-v2): progress on stderr, vectors stored, one-line errors without a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from digestd.config import EncoderSettings
from digestd.demo import SAMPLE_PAPERS
from digestd.embedding.encoder import encoder_identity
from digestd.embedding.stored import count_embedded
from digestd.models import TextVector
from digestd.store import count_papers, open_session


def embedded(engine: Engine, settings: EncoderSettings) -> tuple[int, int]:
    with open_session(engine) as session:
        return count_embedded(session, encoder_identity(settings))


def test_papers_embed_fills_in_what_was_stored_before(  # type: ignore[no-untyped-def]
    run, engine: Engine, encoder_settings: EncoderSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("ingest", "--file", str(SAMPLE_PAPERS)).exit_code == 0  # no encoder yet: nothing embedded
    with open_session(engine) as session:
        total = count_papers(session)
        assert session.scalar(select(func.count()).select_from(TextVector)) == 0
    monkeypatch.setenv("DIGESTD_ENCODER_MODEL", encoder_settings.model)
    assert f"encoder:     {encoder_settings.model}, 0 of {total} papers embedded" in run("status").stdout
    result = run("papers", "embed")
    assert result.exit_code == 0, result.output
    assert f"embedded {total:,} of {total:,} papers" in result.stderr
    assert f"{total:,} papers embedded" in result.stdout
    assert embedded(engine, encoder_settings) == (total, total)
    assert f"encoder:     {encoder_settings.model}, {total} of {total} papers embedded" in run("status").stdout
    again = run("papers", "embed")
    assert (
        again.exit_code == 0
        and f"0 papers embedded with {encoder_settings.model}; {total:,} of {total:,}" in again.stdout
    )


def test_ingest_embeds_the_papers_it_stores(  # type: ignore[no-untyped-def]
    run, engine: Engine, encoder_settings: EncoderSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGESTD_ENCODER_MODEL", encoder_settings.model)
    assert run("ingest", "--file", str(SAMPLE_PAPERS)).exit_code == 0
    done, total = embedded(engine, encoder_settings)
    assert done == total > 0


def test_a_bad_model_is_one_line_and_exit_status_1(
    run, engine: Engine, tmp_path: Path, monkeypatch, encoder_model
) -> None:  # type: ignore[no-untyped-def]
    # encoder_model: sentence-transformers must be there for the model to be what fails
    assert run("ingest", "--file", str(SAMPLE_PAPERS)).exit_code == 0
    folder = tmp_path / "no-model-here"
    folder.mkdir()
    monkeypatch.setenv("DIGESTD_ENCODER_MODEL", str(folder))
    result = run("papers", "embed")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and f"the encoder model '{folder}' cannot be loaded" in errors[0]
    assert any(line.startswith("hint: ") for line in lines)
    assert "Traceback" not in result.output


def test_ingest_with_a_bad_model_still_stores_the_papers(  # type: ignore[no-untyped-def]
    run, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "no-model-here"
    folder.mkdir()
    monkeypatch.setenv("DIGESTD_ENCODER_MODEL", str(folder))
    result = run("ingest", "--file", str(SAMPLE_PAPERS))
    assert result.exit_code == 0, result.output
    with open_session(engine) as session:
        assert count_papers(session) > 0
    assert any("papers stored but not embedded" in record.getMessage() for record in caplog.records)


def test_papers_embed_without_an_encoder_says_how_to_set_one(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DIGESTD_ENCODER_MODEL", raising=False)
    result = run("papers", "embed")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "error: no sentence encoder is configured"
    assert "[encoder] model" in result.stderr and "Traceback" not in result.output


def test_papers_embed_without_the_extra_says_what_to_install(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert run("ingest", "--file", str(SAMPLE_PAPERS)).exit_code == 0
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if `digestd[encoder]` were not installed
    monkeypatch.setenv("DIGESTD_ENCODER_MODEL", "sentence-transformers/not-loaded-in-this-test")
    result = run("papers", "embed")
    assert result.exit_code == 1
    assert "sentence-transformers cannot be imported" in result.stderr
    assert "pip install 'digestd[encoder]'" in result.stderr and "Traceback" not in result.output
