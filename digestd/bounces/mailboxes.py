"""Where returned messages are read from: a Maildir, an IMAP mailbox (one message on
standard input is the CLI's). Each message goes through `events.handle_message`; a
message is marked handled (moved to `cur/`, or flagged \\Seen) only after its outcome is
committed, so a database that cannot be reached leaves it for the next run.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine

from digestd.bounces.events import Outcome, handle_message
from digestd.config import BounceSettings, Settings
from digestd.errors import ConfigError, InputError, SourceError

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
IMAP_TIMEOUT_SECONDS = 60.0


@dataclass
class ScanReport:
    """What one scan handled, by kind (`ignored` included)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.kind] = self.counts.get(outcome.kind, 0) + 1

    def summary(self) -> str:
        total = sum(self.counts.values())
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts.items()))
        return f"{total} message(s)" + (f": {kinds}" if kinds else "")


def scan_maildir(engine: Engine, settings: Settings, path: Path, *, clock: Clock) -> ScanReport:
    """Handle every message in `path`/new and move each to `cur/` (flagged seen, as a mail
    reader would) once its outcome is recorded."""
    new, cur = path / "new", path / "cur"
    if not new.is_dir() or not cur.is_dir():
        raise InputError(f"{path} is not a Maildir", hint="it needs new/, cur/ and tmp/ folders")
    report = ScanReport()
    for item in sorted(new.iterdir()):
        if item.name.startswith(".") or not item.is_file():
            continue
        try:
            raw = item.read_bytes()
        except OSError:  # taken by another scan meanwhile
            continue
        report.add(handle_message(engine, settings, raw, source="maildir", now=clock()))
        with contextlib.suppress(FileNotFoundError):
            item.rename(cur / f"{item.name.partition(':')[0]}:2,S")
    return report


@dataclass(frozen=True)
class ImapTarget:
    host: str
    port: int
    user: str
    mailbox: str
    implicit_tls: bool


def imap_target(settings: BounceSettings) -> ImapTarget:
    parts = urlsplit(settings.imap_url)
    if not settings.imap_password:
        raise ConfigError(
            "bounces.imap_url is set but DIGESTD_BOUNCES_IMAP_PASSWORD is not",
            hint="set it (or DIGESTD_BOUNCES_IMAP_PASSWORD_FILE) to the mailbox's password",
        )
    implicit = parts.scheme == "imaps"
    try:
        port = parts.port or (993 if implicit else 143)
    except ValueError:
        raise ConfigError(f"bounces.imap_url has a bad port: {settings.imap_url!r}") from None
    mailbox_name = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapTarget(parts.hostname or "", port, unquote(parts.username or ""), mailbox_name, implicit)


def poll_imap(engine: Engine, settings: Settings, *, clock: Clock) -> ScanReport:
    """Handle every unseen message in the IMAP mailbox and flag each \\Seen once recorded.
    Always TLS (imaps://, or STARTTLS for imap://), certificates verified."""
    target = imap_target(settings.bounces)
    context = ssl.create_default_context(cafile=settings.bounces.ca_file or None)
    report = ScanReport()
    try:
        client = _connect(target, context)
        try:
            client.login(target.user, settings.bounces.imap_password)
            status, _ = client.select(_quoted(target.mailbox))
            if status != "OK":
                raise SourceError(f"the IMAP server has no mailbox {target.mailbox!r}")
            _, found = client.uid("SEARCH", "UNSEEN")
            for uid in (found[0] or b"").decode("ascii").split():
                _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
                if raw is None:
                    continue
                report.add(handle_message(engine, settings, raw, source="imap", now=clock()))
                client.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)")
        finally:
            try:
                client.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
    except imaplib.IMAP4.error as error:
        raise SourceError(f"IMAP {target.host}:{target.port}: {error}") from None
    except (OSError, ssl.SSLError) as error:
        raise SourceError(f"IMAP {target.host}:{target.port} cannot be reached: {error}") from None
    return report


def _connect(target: ImapTarget, context: ssl.SSLContext) -> imaplib.IMAP4:
    if target.implicit_tls:
        return imaplib.IMAP4_SSL(target.host, target.port, ssl_context=context, timeout=IMAP_TIMEOUT_SECONDS)
    client = imaplib.IMAP4(target.host, target.port, timeout=IMAP_TIMEOUT_SECONDS)
    client.starttls(ssl_context=context)  # refuses a server that does not offer it
    return client


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
