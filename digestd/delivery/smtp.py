"""SMTP with aiosmtplib: secure, reused connections, a shared rate limit, and every reply
classified for the ledger.

Security: `tls` is implicit TLS (port 465); `starttls` (the default) upgrades a plain
connection and refuses a server that does not offer STARTTLS; `none` (no TLS at all) is
allowed for loopback hosts only, e.g. a local relay. Certificates are always verified (`smtp.ca_file`
adds a CA to the system ones). A reply classifies the attempt:

    250 after DATA                       → sent
    4xx anywhere (421, 451, 452, ...)    → temp_failed (retried with backoff)
    5xx at MAIL FROM (our sender refused) → temp_failed: a setup problem, not the subscriber's
    5xx at RCPT or DATA                  → perm_failed; at RCPT with a mailbox error
                                           (550/551/553, or 5.1.x / 5.2.1) the address is suppressed
    connection lost before DATA          → retry (nothing was handed over)
    connection lost or timeout in DATA   → unknown (the server may have taken it)
    a non-ASCII local part (`zoë@`)      → sent with SMTPUTF8; perm_failed if the server does not offer it
    cut off (cancelled) before DATA      → temp_failed; in DATA → unknown (`cut_off_result`)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import ssl

import aiosmtplib

from digestd.config import SmtpSettings
from digestd.delivery.claims import Result
from digestd.delivery.ledger import PERM_FAILED, SENT, TEMP_FAILED, UNKNOWN
from digestd.errors import ConfigError, DeliveryError
from digestd.mail.render import RenderedEmail

log = logging.getLogger(__name__)

RETRY = "retry"  # not a ledger state: the connection dropped before DATA; safe to try again
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
_SUPPRESS_CODES = (550, 551, 553)
NO_SMTPUTF8 = (
    "the address has non-ASCII characters before the @, and the SMTP server does not offer SMTPUTF8 to carry them"
)


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_security(settings: SmtpSettings) -> None:
    if settings.security == "none" and not is_loopback(settings.host):
        raise ConfigError(
            f"smtp.security = 'none' is not allowed for {settings.host}: only for a loopback relay",
            hint="use smtp.security = starttls (port 587) or tls (port 465)",
        )


def make_tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """A verifying client context: the system CAs, plus `smtp.ca_file` if set."""
    context = ssl.create_default_context()
    if settings.ca_file:
        try:
            context.load_verify_locations(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"smtp.ca_file = {settings.ca_file!r} cannot be loaded: {error}") from None
    return context


def classify_reply(phase: str, code: int, message: str) -> Result:
    """The ledger result of an SMTP error reply `code` to the `phase` command."""
    reason = f"{code} {' '.join(message.split())} (at {phase})"
    if 400 <= code < 500 or phase == "MAIL":  # a refused sender is our setup, not this subscriber's fault
        return Result(TEMP_FAILED, reason)
    enhanced = _ENHANCED.match(message)
    if enhanced:
        mailbox = enhanced.group(2) == "1" or enhanced.group(2, 3) == ("2", "1")
    else:
        mailbox = code in _SUPPRESS_CODES
    return Result(PERM_FAILED, reason, suppress=phase == "RCPT" and mailbox)


class RateLimiter:
    """At most `per_second` message starts in any second, evenly spaced (with 2% margin),
    shared by all connections of a run."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.02 / per_second
        self.next_slot = 0.0

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class SmtpConnection:
    """One SMTP connection, opened on first use and reused for message after message."""

    def __init__(self, settings: SmtpSettings, tls: ssl.SSLContext) -> None:
        self.settings, self.tls = settings, tls
        self.smtp: aiosmtplib.SMTP | None = None
        self.eight_bit = False  # the server offers 8BITMIME (known once connected)
        self.smtputf8 = False  # the server offers SMTPUTF8 (known once connected)
        self.cut_off_in: str | None = None  # the command a cancelled `send` was in

    @property
    def connected(self) -> bool:
        return self.smtp is not None and self.smtp.is_connected

    async def connect(self) -> None:
        """Connect, secure and log in, or raise `DeliveryError` saying what failed."""
        s = self.settings
        self.close()
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            start_tls=False,
            tls_context=self.tls,
            timeout=s.timeout_seconds,
        )
        try:
            await smtp.connect()
            if s.security == "starttls":
                await self._start_tls(smtp)
            if s.username:
                await smtp.login(s.username, s.password)
            if smtp.is_ehlo_or_helo_needed:  # now, for the server's extensions (8BITMIME)
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
        except aiosmtplib.SMTPAuthenticationError as error:
            smtp.close()
            raise DeliveryError(
                f"the SMTP server {s.host}:{s.port} refused the login of {s.username!r}: {error.code} {error.message}",
                hint="check smtp.username and DIGESTD_SMTP_PASSWORD",
            ) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as error:
            smtp.close()
            raise DeliveryError(
                f"cannot connect to the SMTP server {s.host}:{s.port}: {error}",
                hint="check smtp.host, smtp.port, smtp.security and smtp.ca_file",
            ) from None
        self.smtp = smtp
        self.eight_bit = smtp.supports_extension("8bitmime")
        self.smtputf8 = smtp.supports_extension("smtputf8")
        log.debug("connected to %s:%s (8BITMIME: %s, SMTPUTF8: %s)", s.host, s.port, self.eight_bit, self.smtputf8)

    async def _start_tls(self, smtp: aiosmtplib.SMTP) -> None:
        await smtp.ehlo()
        if smtp.supports_extension("starttls"):
            await smtp.starttls(tls_context=self.tls)
        else:
            smtp.close()
            raise DeliveryError(
                f"the SMTP server {self.settings.host}:{self.settings.port} does not offer STARTTLS",
                hint="digestd does not send mail in the clear; use smtp.security = tls if the server speaks TLS",
            )

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    async def quit(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                await self.smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
        self.close()

    async def _reset(self) -> None:
        """After a refused command: RSET, so the connection can carry the next message."""
        if self.smtp is None or not self.smtp.is_connected:
            self.close()
            return
        try:
            await self.smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.close()

    async def send(self, email: RenderedEmail) -> Result:
        """One SMTP transaction (MAIL, RCPT, DATA) on this connection, connecting if needed."""
        self.cut_off_in = None
        if not self.connected:
            await self.connect()
        assert self.smtp is not None
        if email.eight_bit and not self.eight_bit:
            return Result(TEMP_FAILED, "the SMTP server no longer offers 8BITMIME; the next run renders 7-bit")
        if email.smtputf8 and not self.smtputf8:
            return Result(PERM_FAILED, NO_SMTPUTF8)
        options = ["BODY=8BITMIME"] * email.eight_bit + ["SMTPUTF8"] * email.smtputf8
        encoding = "utf-8" if email.smtputf8 else "ascii"
        phase = "MAIL"
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                await self.smtp.mail(email.sender, options=options or None, encoding=encoding)
                phase = "RCPT"
                await self.smtp.rcpt(email.recipient, encoding=encoding)
                phase = "DATA"
                reply = await self.smtp.data(email.data)
            return Result(SENT, f"{reply.code} {' '.join(reply.message.split())}")
        except aiosmtplib.SMTPResponseException as error:
            await self._reset()
            return classify_reply(phase, error.code, error.message)
        except (TimeoutError, OSError) as error:  # includes SMTPServerDisconnected, SMTPTimeoutError
            self.close()
            what = f"{type(error).__name__}: {error}".rstrip(": ")
            if phase == "DATA":
                return Result(UNKNOWN, f"connection lost during DATA ({what}); the message may have arrived")
            return Result(RETRY, f"connection lost before DATA, at {phase} ({what})")
        except asyncio.CancelledError:  # the transaction is cut: this connection cannot carry another
            self.cut_off_in = phase
            self.close()
            raise

    def cut_off_result(self) -> Result:
        """What is known of the message whose `send` was cancelled: inside DATA the server may
        have it; before, nothing was handed over."""
        if self.cut_off_in == "DATA":
            return Result(UNKNOWN, "cut off by the stop during DATA; the message may have arrived")
        return Result(TEMP_FAILED, "cut off by the stop before DATA; not sent")
