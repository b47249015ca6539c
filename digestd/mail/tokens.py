"""Signed tokens for the links in an email: unsubscribe, manage, and rate a paper.

A token is `<payload>.<signature>`, both base64url without padding. The payload is
`kind`, the subscriber id and, for `rate`, the value (+1/-1) and the paper id, joined by
U+001F. The signature is the first 16 bytes of HMAC-SHA256 over the payload, with a key
derived from `DIGESTD_SECRET_KEY`; `verify` compares it in constant time. Tokens do not
expire: an unsubscribe link in a year-old email must still work (RFC 8058). Changing the
secret key invalidates every link already mailed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from digestd.errors import ConfigError, InputError

UNSUBSCRIBE, MANAGE, RATE = "unsubscribe", "manage", "rate"
TOKEN_KINDS = (UNSUBSCRIBE, MANAGE, RATE)
# Used by --dry-run and previews when DIGESTD_SECRET_KEY is unset; never for real mail.
DEV_SECRET_KEY = "digestd-development-key-not-secret"
_SEPARATOR = "\x1f"
_SIGNATURE_BYTES = 16


class TokenError(InputError):
    """Raised when a token is malformed, of the wrong kind, or its signature does not match."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    subscriber_id: int
    paper_id: str | None = None  # rate only
    value: int | None = None  # rate only: +1 or -1


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_secret_key(secret_key: str) -> str:
    """The key for real mail, or a `ConfigError` saying how to set one."""
    if not secret_key:
        raise ConfigError(
            "DIGESTD_SECRET_KEY is not set: the links in emails (unsubscribe, manage, rate) cannot be signed",
            hint="set DIGESTD_SECRET_KEY to a long random string (e.g. `openssl rand -base64 32`)",
        )
    return secret_key


class TokenSigner:
    """Signs and verifies tokens with one secret key ."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"digestd-token-v1|" + secret_key.encode()).digest()

    def _signature(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, "sha256")[:_SIGNATURE_BYTES]

    def sign(self, token: Token) -> str:
        parts = [token.kind, str(token.subscriber_id)]
        if token.kind == RATE:
            if token.paper_id is None or token.value not in (1, -1):
                raise ValueError("a rate token needs a paper id and a value of +1 or -1")
            parts += [str(token.value), token.paper_id]
        payload = _SEPARATOR.join(parts).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._signature(payload))}"

    def verify(self, text: str, *, kind: str | None = None) -> Token:
        """The token `text` carries, or `TokenError` if it was not signed with this key."""
        encoded, _, signature = text.strip().partition(".")
        try:
            payload, given = _b64decode(encoded), _b64decode(signature)
        except (ValueError, TypeError):
            raise TokenError("the link is damaged", hint="copy the whole link from the email") from None
        if not hmac.compare_digest(self._signature(payload), given):
            raise TokenError("the link is not valid", hint="it may be damaged, or from an older key")
        token = _parse_payload(payload.decode("utf-8", "replace"))
        if kind is not None and token.kind != kind:
            raise TokenError(f"the link is for {token.kind}, not {kind}")
        return token

    def sign_unsubscribe(self, subscriber_id: int) -> str:
        return self.sign(Token(UNSUBSCRIBE, subscriber_id))

    def sign_manage(self, subscriber_id: int) -> str:
        return self.sign(Token(MANAGE, subscriber_id))

    def sign_rate(self, subscriber_id: int, paper_id: str, value: int) -> str:
        return self.sign(Token(RATE, subscriber_id, paper_id=paper_id, value=value))


def _parse_payload(payload: str) -> Token:
    parts = payload.split(_SEPARATOR, 3)
    try:
        kind, subscriber_id = parts[0], int(parts[1])
        if kind == RATE and len(parts) == 4:
            return Token(kind, subscriber_id, paper_id=parts[3], value=int(parts[2]))
        if kind in (UNSUBSCRIBE, MANAGE) and len(parts) == 2:
            return Token(kind, subscriber_id)
    except (IndexError, ValueError):
        pass
    raise TokenError("the link is not valid")
