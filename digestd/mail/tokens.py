"""Signed tokens for the links in an email: unsubscribe, manage, rate a paper, view a digest, the archive.

A token is `<payload>.<signature>`, both base64url without padding. The payload is
`kind`, the subscriber id and, for `rate`, the value (+1/-1) and the paper id, for `view`
the ledger's period (one digest), joined by U+001F. `view` and `archive` (the archive and
the Atom feed) only show; a feed reader may hold an `archive` token, so it changes nothing.
The signature is the first 16 bytes of HMAC-SHA256 over the payload and the
subscriber's link key (a random value stored with the subscriber, `models.Subscriber.link_key`),
with a key derived from `DIGESTD_SECRET_KEY`; `verify` compares it in constant time.

So a token is good only for the record it was made for: when the subscriber is removed or
wiped, the key goes with the row and every link mailed to them dies, even if the id were
ever given to someone else. Tokens do not expire otherwise: an unsubscribe link in a
year-old email must still work (RFC 8058). Changing the secret key invalidates every link
already mailed. Verifying needs the link key, so it takes two steps: `claimed_subscriber`
reads which subscriber a token names (unverified), the caller loads that subscriber's key,
and `verify` checks the signature with it.

Return tokens (`sign_return`) go into addresses, not links: the envelope sender of a digest
is `bounces+<token>@domain` (VERP) and its mailto unsubscribe `unsubscribe+<token>@domain`.
Such a token names the delivery row, `<id>-<signature>`, the signature 80 bits of the same
HMAC over the kind, the id and the subscriber's link key, in lower-case base32: a relay or
mailbox may change the case of a local part, and a local part allows only so much.

Tokens from before link keys (signed over the payload alone) are accepted only by
`verify(..., accept_legacy=True)`, which the web allows for unsubscribe links only, for a
while after the upgrade (see `web.links`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from digestd.errors import ConfigError, InputError

UNSUBSCRIBE, MANAGE, RATE = "unsubscribe", "manage", "rate"
VIEW, ARCHIVE = "view", "archive"  # one digest on the web; the archive and the feed
BOUNCE = "bounce"  # return tokens only (`sign_return`)
TOKEN_KINDS = (UNSUBSCRIBE, MANAGE, RATE, VIEW, ARCHIVE)
# Used by --dry-run and previews when DIGESTD_SECRET_KEY is unset; never for real mail.
DEV_SECRET_KEY = "digestd-development-key-not-secret"
_SEPARATOR = "\x1f"
_ID = re.compile(r"[0-9]{1,10}")
_PERIOD = re.compile(r"[0-9A-Za-z_.:+-]{1,40}")  # `schedule.period_key`: a local date
MAX_SUBSCRIBER_ID = 2**31 - 1  # PostgreSQL's integer
_SIGNATURE_BYTES = 16


class TokenError(InputError):
    """Raised when a token is malformed, of the wrong kind, or its signature does not match."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    subscriber_id: int
    paper_id: str | None = None  # rate only
    value: int | None = None  # rate only: +1 or -1
    period: str | None = None  # view only: the ledger row's period


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


_RETURN_TOKEN = re.compile(r"([0-9]{1,10})-([a-z2-7]{16})")
_RETURN_SIGNATURE_BYTES = 10


def read_return_token(text: str) -> tuple[int, str] | None:
    """(delivery id, signature) of a return token, NOT verified; None if it is not one."""
    match = _RETURN_TOKEN.fullmatch(text.strip().lower())
    if match is None or not 0 < int(match[1]) <= MAX_SUBSCRIBER_ID:
        return None
    return int(match[1]), match[2]


class TokenSigner:
    """Signs and verifies tokens with one secret key."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"digestd-token-v2|" + secret_key.encode()).digest()
        self._legacy_key = hashlib.sha256(b"digestd-token-v1|" + secret_key.encode()).digest()

    def _signature(self, payload: bytes, link_key: str) -> bytes:
        # The link key is base64url (no U+001F) and comes last, so the message is unambiguous.
        message = payload + b"\x1f" + link_key.encode()
        return hmac.digest(self._key, message, "sha256")[:_SIGNATURE_BYTES]

    def sign(self, token: Token, link_key: str) -> str:
        parts = [token.kind, str(token.subscriber_id)]
        if token.kind == RATE:
            if token.paper_id is None or token.value not in (1, -1):
                raise ValueError("a rate token needs a paper id and a value of +1 or -1")
            parts += [str(token.value), token.paper_id]
        elif token.kind == VIEW:
            if token.period is None or not _PERIOD.fullmatch(token.period):
                raise ValueError("a view token needs a period")
            parts.append(token.period)
        payload = _SEPARATOR.join(parts).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._signature(payload, link_key))}"

    def claimed_subscriber(self, text: str, *, kind: str | None = None) -> int:
        """The subscriber id `text` names, NOT verified: only to look up the link key."""
        return _parse_payload(_split(text)[0].decode("utf-8", "replace"), kind).subscriber_id

    def verify(self, text: str, *, link_key: str, kind: str | None = None, accept_legacy: bool = False) -> Token:
        """The token `text` carries, or `TokenError` unless this key signed it for `link_key`
        (or, with `accept_legacy`, signed it the old way, without a link key)."""
        payload, given = _split(text)
        token = _parse_payload(payload.decode("utf-8", "replace"), kind)
        if hmac.compare_digest(self._signature(payload, link_key), given):
            return token
        legacy = hmac.digest(self._legacy_key, payload, "sha256")[:_SIGNATURE_BYTES]
        if accept_legacy and hmac.compare_digest(legacy, given):
            return token
        raise TokenError("the link is not valid", hint="it may be damaged, old, or for a subscription that ended")

    def _return_signature(self, kind: str, delivery_id: int, link_key: str) -> str:
        digest = self._signature(f"return{_SEPARATOR}{kind}{_SEPARATOR}{delivery_id}".encode(), link_key)
        return base64.b32encode(digest[:_RETURN_SIGNATURE_BYTES]).decode("ascii").lower()

    def sign_return(self, kind: str, delivery_id: int, link_key: str) -> str:
        """The token for `kind+<token>@domain` addresses (`kind`: bounce or unsubscribe)."""
        return f"{delivery_id}-{self._return_signature(kind, delivery_id, link_key)}"

    def verify_return(self, text: str, *, kind: str, link_key: str) -> int:
        """The delivery id `text` names, or `TokenError` unless this key signed it for `kind`
        and the subscriber with `link_key`."""
        read = read_return_token(text)
        if read is None or not hmac.compare_digest(self._return_signature(kind, read[0], link_key), read[1]):
            raise TokenError("the return address is not one digestd signed")
        return read[0]

    def sign_unsubscribe(self, subscriber_id: int, link_key: str) -> str:
        return self.sign(Token(UNSUBSCRIBE, subscriber_id), link_key)

    def sign_manage(self, subscriber_id: int, link_key: str) -> str:
        return self.sign(Token(MANAGE, subscriber_id), link_key)

    def sign_rate(self, subscriber_id: int, link_key: str, paper_id: str, value: int) -> str:
        return self.sign(Token(RATE, subscriber_id, paper_id=paper_id, value=value), link_key)

    def sign_view(self, subscriber_id: int, link_key: str, period: str) -> str:
        return self.sign(Token(VIEW, subscriber_id, period=period), link_key)

    def sign_archive(self, subscriber_id: int, link_key: str) -> str:
        return self.sign(Token(ARCHIVE, subscriber_id), link_key)


def _split(text: str) -> tuple[bytes, bytes]:
    encoded, _, signature = text.strip().partition(".")
    try:
        return _b64decode(encoded), _b64decode(signature)
    except (ValueError, TypeError):
        raise TokenError("the link is damaged", hint="copy the whole link from the email") from None


def _parse_payload(payload: str, kind: str | None) -> Token:
    token = _read_payload(payload)
    if kind is not None and token.kind != kind:
        raise TokenError(f"the link is for {token.kind}, not {kind}")
    return token


def _read_payload(payload: str) -> Token:
    parts = payload.split(_SEPARATOR, 3)
    try:
        kind, subscriber_id = parts[0], int(parts[1]) if _ID.fullmatch(parts[1]) else 0
        if not 0 < subscriber_id <= MAX_SUBSCRIBER_ID:  # an id the database cannot even look up
            raise ValueError(parts[1])
        if kind == RATE and len(parts) == 4 and parts[2] in ("1", "-1"):
            return Token(kind, subscriber_id, paper_id=parts[3], value=int(parts[2]))
        if kind == VIEW and len(parts) == 3 and _PERIOD.fullmatch(parts[2]):
            return Token(kind, subscriber_id, period=parts[2])
        if kind in (UNSUBSCRIBE, MANAGE, ARCHIVE) and len(parts) == 2:
            return Token(kind, subscriber_id)
    except (IndexError, ValueError):
        pass
    raise TokenError("the link is not valid")
