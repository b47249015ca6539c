"""Confirmation links for web sign-ups: signed, single use, valid for 72 hours.

A token is `<payload>.<signature>` (base64url, no padding). The payload is `confirm`,
the subscriber id, the issue time (Unix seconds) and a random nonce, joined by U+001F;
the signature is HMAC-SHA256 over it with a key derived from `DIGESTD_SECRET_KEY` (a
different derivation from `digestd.mail.tokens`, so no other link can pass as one of these).
The nonce is also stored on the subscriber and cleared when the link is used, so a
replayed link, or an older link after a newer one was mailed, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from digestd.mail.tokens import TokenError

CONFIRM = "confirm"
CONFIRM_VALID_FOR = timedelta(hours=72)
_SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True)
class ConfirmToken:
    subscriber_id: int
    issued_at: datetime
    nonce: str


def new_nonce() -> str:
    """A fresh, unguessable nonce to store on the subscriber and put in the link."""
    return secrets.token_urlsafe(18)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ConfirmSigner:
    """Signs and verifies confirmation tokens with one secret key."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"digestd-confirm-v1|" + secret_key.encode()).digest()

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def sign(self, token: ConfirmToken) -> str:
        issued = str(int(token.issued_at.timestamp()))
        payload = _SEPARATOR.join([CONFIRM, str(token.subscriber_id), issued, token.nonce]).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._signature(payload))}"

    def verify(self, text: str) -> ConfirmToken:
        """The token `text` carries, or `TokenError` if this key did not sign it (expiry is not checked here)."""
        encoded, _, signature = text.strip().partition(".")
        try:
            payload, given = _b64decode(encoded), _b64decode(signature)
        except (ValueError, TypeError):
            raise TokenError("the confirmation link is damaged", hint="copy the whole link from the email") from None
        if not hmac.compare_digest(self._signature(payload), given):
            raise TokenError("the confirmation link is not valid", hint="it may be damaged, or from an older key")
        parts = payload.decode("utf-8", "replace").split(_SEPARATOR)
        try:
            if len(parts) == 4 and parts[0] == CONFIRM:
                issued_at = datetime.fromtimestamp(int(parts[2]), UTC)
                return ConfirmToken(subscriber_id=int(parts[1]), issued_at=issued_at, nonce=parts[3])
        except (ValueError, OverflowError):
            pass
        raise TokenError("the confirmation link is not valid")


def check_fresh(token: ConfirmToken, *, now: datetime) -> None:
    """Raise `TokenError` when the link is older than 72 hours."""
    if now - token.issued_at > CONFIRM_VALID_FOR:
        raise TokenError(
            "the confirmation link has expired (links are valid for 72 hours)",
            hint="subscribe again to get a new link",
        )
