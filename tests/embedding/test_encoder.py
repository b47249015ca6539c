"""The encoder (`embedding.encoder`): off by default, unit vectors, and one-line errors
naming the model when it cannot be loaded or sentence-transformers is missing."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from digestd.config import EncoderSettings, load_settings
from digestd.embedding.encoder import Encoder, load_model, open_encoder
from digestd.errors import ConfigError, EncoderError


def test_no_model_means_no_encoder() -> None:
    assert open_encoder(EncoderSettings()) is None
    assert load_settings(None, environ={}).encoder == EncoderSettings(model="", max_tokens=128, batch_size=64)


def test_the_model_comes_from_the_environment_and_limits_are_checked() -> None:
    settings = load_settings(None, environ={"DIGESTD_ENCODER_MODEL": "some/model", "DIGESTD_ENCODER_MAX_TOKENS": "256"})
    encoder = open_encoder(settings.encoder)
    assert encoder is not None and encoder.identity == "some/model max_tokens=256"
    with pytest.raises(ConfigError, match="encoder.batch_size = 0 is not allowed"):
        load_settings(None, environ={"DIGESTD_ENCODER_BATCH_SIZE": "0"})
    with pytest.raises(ConfigError, match="encoder.model = .* is not allowed: at most 900 characters"):
        load_settings(None, environ={"DIGESTD_ENCODER_MODEL": "m" * 901})  # the stored identity has a size


def test_texts_become_unit_float32_rows_in_order(encoder_settings: EncoderSettings) -> None:
    encoder = Encoder(replace(encoder_settings, batch_size=2))
    rows = encoder.encode(["graph neural networks", "diffusion models", "graph neural networks", "dark matter"])
    assert rows.shape == (4, 384) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert np.allclose(rows[0], rows[2], atol=1e-6)
    assert encoder.encoded == 4


def test_a_folder_that_holds_no_model_is_one_line_naming_it(tmp_path: Path, encoder_model: str) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    with pytest.raises(EncoderError) as raised:
        Encoder(EncoderSettings(model=str(folder))).encode(["x"])
    assert str(folder) in raised.value.message and "cannot be loaded" in raised.value.message
    assert "\n" not in raised.value.message and raised.value.hint


def test_without_sentence_transformers_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if the extra were not installed
    with pytest.raises(EncoderError, match="sentence-transformers cannot be imported") as raised:
        load_model("sentence-transformers/all-MiniLM-L6-v2-not-installed", 128)
    assert raised.value.hint is not None and "pip install 'digestd[encoder]'" in raised.value.hint
    assert "download.pytorch.org/whl/cpu" in raised.value.hint
