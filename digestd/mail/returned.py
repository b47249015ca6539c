"""What came back: one message's raw bytes in, what it is and which digest it is about out
(pure: no database; `digestd.bounces` acts on the result).

A message counts only with a return token (`tokens.sign_return`) in one of the addresses
digestd gave out: the envelope sender `bounces+<token>@...` (where DSNs go) or the mailto
unsubscribe `unsubscribe+<token>@...`. The token is looked for in the addresses the message
was delivered to (the pipe's recipient, `Delivered-To`, `X-Original-To`, `To`), then, for
reports that go to a fixed address (feedback loops), in the original message the report
carries (its `Return-Path` and `List-Unsubscribe`). It is verified by the caller, which
holds the link keys.

- sent to the unsubscribe address, by a person or a mail client: a mailed unsubscribe;
- an ARF feedback report (RFC 5965, `multipart/report; report-type=feedback-report`): a
  complaint;
- a DSN (RFC 3464) or another MTA's bounce format, read by flufl.bounce (Mailman's
  detectors): the delivery-status part gives the status code and diagnostic; 5.x.x is a
  hard bounce, 4.x.x (a relay that gave up retrying) a soft one; a delay warning
  ("Action: delayed": the relay still tries) is ignored;
- an auto-reply (`Auto-Submitted`, `X-Autoreply`, `Precedence: auto_reply`, an
  out-of-office subject) or anything else: ignored.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from digestd.mail.tokens import BOUNCE, UNSUBSCRIBE

log = logging.getLogger(__name__)

HARD, SOFT, COMPLAINT, UNSUBSCRIBE_REQUEST, IGNORED = "hard", "soft", "complaint", "unsubscribe", "ignored"
KINDS = (HARD, SOFT, COMPLAINT, UNSUBSCRIBE_REQUEST)
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_ORIGINAL_HEADERS = ("Return-Path", "List-Unsubscribe")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|auto(matic)?[ -]?(reply|response)|auto:|abwesenheit|absence|vacation)", re.I
)
DIAGNOSTIC_MAX = 500
MESSAGE_ID_MAX = 300


@dataclass(frozen=True, slots=True)
class ReturnAddresses:
    """The two addresses digestd gives out (without their tokens)."""

    bounce: str  # bounces@digest.example.org
    unsubscribe: str  # unsubscribe@digest.example.org

    def pattern(self, kind: str) -> re.Pattern[str]:
        local, _, domain = (self.bounce if kind == BOUNCE else self.unsubscribe).rpartition("@")
        return re.compile(rf"(?<![\w.+-]){re.escape(local)}\+([0-9a-z]+-[0-9a-z]+)@{re.escape(domain)}\b", re.I)


@dataclass(frozen=True, slots=True)
class Returned:
    """What one message is: `kind` (hard, soft, complaint, unsubscribe or ignored), the
    return token it carries and its kind (bounce or unsubscribe), and what it says."""

    kind: str
    token: str = ""
    token_kind: str = ""
    status: str = ""
    diagnostic: str = ""
    reason: str = ""  # why it is ignored, or what it is, for the log
    message_id: str = ""  # the returned message's own, so that a message read twice counts once


def read_returned(raw: bytes, addresses: ReturnAddresses, *, recipient: str = "") -> Returned:
    """What the message in `raw` is (see the module's docstring); never raises on bad input."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    token_kind, token, to_unsubscribe = _find_token(message, addresses, recipient)
    kind, status, diagnostic, reason = _classify(message, to_unsubscribe=to_unsubscribe)
    if kind == IGNORED:
        return Returned(IGNORED, token, token_kind, status, diagnostic, reason)
    if not token:
        return Returned(IGNORED, reason=f"a {kind} report without a digestd return token")
    message_id = _clip(str(message.get("Message-ID", "")))[:MESSAGE_ID_MAX]
    return Returned(kind, token, token_kind, status, diagnostic, reason, message_id)


def _find_token(message: Message, addresses: ReturnAddresses, recipient: str) -> tuple[str, str, bool]:
    """(token kind, token, whether it was sent to the unsubscribe address)."""
    delivered_to = [recipient, *(_all(message, name) for name in _RECIPIENT_HEADERS)]
    for text in delivered_to:
        for kind in (UNSUBSCRIBE, BOUNCE):
            found = addresses.pattern(kind).search(text)
            if found:
                return kind, found[1].lower(), kind == UNSUBSCRIBE
    for original in _embedded_headers(message):
        for name, kind in (("Return-Path", BOUNCE), ("List-Unsubscribe", UNSUBSCRIBE)):
            found = addresses.pattern(kind).search(_all(original, name))
            if found:
                return kind, found[1].lower(), False
    return "", "", False


def _all(message: Message, name: str) -> str:
    return " ".join(str(value) for value in message.get_all(name, []))


def _embedded_headers(message: Message) -> Iterator[Message]:
    """The original message (or its headers) a bounce or report carries."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/rfc822-headers"):
            payload = part.get_payload()
            for inner in payload if isinstance(payload, list) else []:
                if isinstance(inner, Message):
                    yield inner
        elif content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            yield email.message_from_bytes(text if isinstance(text, bytes) else b"", policy=email.policy.compat32)


def _classify(message: Message, *, to_unsubscribe: bool) -> tuple[str, str, str, str]:
    """(kind, status, diagnostic, reason)."""
    report = message.get_content_type() == "multipart/report"
    report_type = str(message.get_param("report-type", "", header="content-type") or "").lower()
    if report and report_type == "feedback-report":
        return _feedback(message)
    if (report and report_type == "delivery-status") or _failures(message):
        return _bounce(message)
    if _is_auto_reply(message):
        return IGNORED, "", "", "an auto-reply"
    if to_unsubscribe:
        return UNSUBSCRIBE_REQUEST, "", "", "a mailed unsubscribe"
    return IGNORED, "", "", "not a bounce, complaint or unsubscribe"


def _feedback(message: Message) -> tuple[str, str, str, str]:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _fields(part)
            feedback_type = fields.get("feedback-type", "abuse").lower()
            if feedback_type == "not-spam":
                return IGNORED, "", "", "a feedback report saying not-spam"
            return COMPLAINT, "", _clip(f"feedback-type {feedback_type}"), "an ARF complaint"
    return IGNORED, "", "", "a feedback report without its machine-readable part"


def _bounce(message: Message) -> tuple[str, str, str, str]:
    """A bounce: from the DSN's delivery-status part when there is one, else flufl.bounce's verdict."""
    for fields in _delivery_status(message):
        action = fields.get("action", "").lower()
        status = _status(fields.get("status", ""))
        diagnostic = _clip(
            fields.get("diagnostic-code", "").partition(";")[2].strip() or fields.get("diagnostic-code", "")
        )
        if action == "delayed":
            return IGNORED, status, diagnostic, "a delay warning: the relay is still trying"
        if action in ("failed", "") and status:
            return (HARD if status.startswith("5") else SOFT), status, diagnostic, "a DSN"
        if action == "failed":
            return HARD, "", diagnostic, "a DSN"
    temporary, permanent = _failures(message) or (frozenset(), frozenset())
    body = _clip(_text(message))
    status = _status(body)
    if permanent:
        return HARD, status, body, "a bounce (non-standard format)"
    if temporary:
        return IGNORED, status, body, "a delay warning (non-standard format)"
    return IGNORED, "", "", "a delivery report that reports no failure"


def _failures(message: Message) -> tuple[frozenset[bytes], frozenset[bytes]] | None:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector that trips over a strange message: then it is not a bounce it knows
        log.debug("flufl.bounce could not read a message", exc_info=True)
        return None
    return (temporary, permanent) if temporary or permanent else None


def _delivery_status(message: Message) -> Iterator[dict[str, str]]:
    """The per-recipient field groups of every message/delivery-status part."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks[1:]:  # the first block is per message, the others per recipient
            if isinstance(block, Message):
                yield {name.lower(): " ".join(str(value).split()) for name, value in block.items()}


def _fields(part: Message) -> dict[str, str]:
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [part]
    fields: dict[str, str] = {}
    for block in blocks:
        if isinstance(block, Message):
            fields |= {name.lower(): " ".join(str(value).split()) for name, value in block.items()}
    if not fields:  # sent as text
        text = part.get_payload(decode=True)
        inner = email.message_from_bytes(text if isinstance(text, bytes) else b"", policy=email.policy.compat32)
        fields = {name.lower(): str(value) for name, value in inner.items()}
    return fields


def _is_auto_reply(message: Message) -> bool:
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (
        auto not in ("", "no")
        or any(name in message for name in ("X-Autoreply", "X-Autorespond"))
        or precedence in ("auto_reply", "bulk", "junk")
        or bool(_AUTO_SUBJECT.match(str(message.get("Subject", ""))))
    )


def _status(text: str) -> str:
    found = _STATUS.search(text)
    return found[0] if found else ""


def _text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return data.decode("utf-8", "replace")
    return ""


def _clip(text: str) -> str:
    """One line without control characters, at most `DIAGNOSTIC_MAX` characters."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).split())[:DIAGNOSTIC_MAX]
