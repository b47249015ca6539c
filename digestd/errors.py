"""The errors digestd raises on purpose, all under `DigestdError`.

    DigestdError                 anything a user can fix or should be told about
    ├── ConfigError              a bad setting: names the key, the value and what is allowed
    ├── InputError               bad user input: an address, a timezone, an id, a file row
    ├── NotFoundError            a subscriber or paper that does not exist
    ├── StoreError               the database cannot be reached, or is not migrated
    ├── SourceError              a feed or file that cannot be fetched or parsed
    ├── RenderError              a template that does not load or render
    ├── EncoderError             the sentence encoder is not installed or its model does not load
    └── DeliveryError            the SMTP server refused, or could not be reached

Each carries a one-line `message` and an optional `hint`. The CLI prints them as one
line (plus the hint) in one place; `--debug` shows the traceback.
"""

from __future__ import annotations


class DigestdError(Exception):
    """Base class: a problem to report to the user in one line, with a hint."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(DigestdError):
    """Raised when a configuration value is missing or not allowed."""

    exit_code = 2


class InputError(DigestdError):
    """Raised for invalid user input (an address, a timezone, an id, a row of a file)."""

    exit_code = 2


class NotFoundError(DigestdError):
    """Raised when a named subscriber or paper does not exist."""


class StoreError(DigestdError):
    """Raised when the database cannot be opened, is locked, or is not at the head revision."""


class SourceError(DigestdError):
    """Raised when a source cannot be fetched or its document cannot be parsed."""


class RenderError(DigestdError):
    """Raised when a template cannot be loaded or rendered."""


class EncoderError(DigestdError):
    """Raised when the sentence encoder (`[encoder] model`) cannot be imported, loaded or run."""


class DeliveryError(DigestdError):
    """Raised when mail cannot be handed to the SMTP server."""
