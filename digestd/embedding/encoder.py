"""The sentence encoder: a sentence-transformers model, loaded on first use, on the CPU.

sentence-transformers and torch are an optional extra (`pip install 'digestd[encoder]'`);
they are imported only when the first text is encoded, so that a digestd without them, or
one that never embeds, starts as fast as before. NumPy, too, is imported only then: this
module is what `digestd status` reads the encoder's identity from.

A loaded model is kept for the process (`load_model` remembers the last two), so the
encoders a daemon makes per send round or per ingest load it once; one text batch is
encoded at a time in a process (the model is shared, and so are the cores).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from digestd.config import EncoderSettings
from digestd.errors import EncoderError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install it with `pip install 'digestd[encoder]'` (for a CPU-only torch, first "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`), or leave [encoder] model empty"
)
_ENCODING = threading.Lock()


def encoder_identity(settings: EncoderSettings) -> str:
    """What a vector is stored with: the model and the token limit (a vector of the first 128
    tokens is not one of the first 256)."""
    return f"{settings.model} max_tokens={settings.max_tokens}"


class Encoder:
    """Encodes texts into unit-length float32 vectors with `settings.model`.

    The model is loaded by the first `encode` (a few seconds); `encoded` counts the texts
    encoded so far, so that callers and tests can tell a reused vector from a new one."""

    def __init__(self, settings: EncoderSettings) -> None:
        self.settings = settings
        self.identity = encoder_identity(settings)
        self.encoded = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text (float32), in the order given."""
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model = load_model(self.settings.model, self.settings.max_tokens)
        try:
            with _ENCODING:
                rows = model.encode(
                    list(texts), batch_size=self.settings.batch_size, normalize_embeddings=True, show_progress_bar=False
                )
        except Exception as error:  # torch and tokenizers raise many kinds; each is this model's failure
            raise EncoderError(f"the encoder {self.settings.model!r} failed: {_cause(error)}") from error
        self.encoded += len(texts)
        return np.asarray(rows, dtype=np.float32)


@functools.lru_cache(maxsize=2)
def load_model(name: str, max_tokens: int) -> Any:
    """The SentenceTransformer `name` (a model name or a folder) on the CPU, cut to `max_tokens`."""
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except Exception as error:  # ImportError, or torch's OSError / RuntimeError for a missing shared library
        raise EncoderError(
            f"[encoder] model is set, but sentence-transformers cannot be imported ({_cause(error)})", hint=INSTALL_HINT
        ) from None
    transformers_logging.disable_progress_bar()  # its "Loading weights" bar on stderr; digestd logs what it loads
    log.info("loading the sentence encoder %s", name)
    try:
        model = SentenceTransformer(name, device="cpu")
    except Exception as error:  # OSError, ValueError, Hugging Face's own: all mean "this model does not load"
        raise EncoderError(
            f"the encoder model {name!r} cannot be loaded: {_cause(error)}",
            hint="[encoder] model takes a sentence-transformers model name (downloaded once from Hugging Face) "
            "or a local folder holding one",
        ) from None
    model.max_seq_length = max_tokens
    return model


def _cause(error: Exception) -> str:
    """The first line of an error, for a one-line message."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def explain(error: EncoderError) -> str:
    """The error and its hint in one line, for the log of a run that goes on without the encoder."""
    return f"{error.message} ({error.hint})" if error.hint else error.message


def open_encoder(settings: EncoderSettings) -> Encoder | None:
    """The encoder `[encoder]` configures, or None when no model is set. Nothing is loaded yet."""
    return Encoder(settings) if settings.model else None
