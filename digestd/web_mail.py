"""Send the web's own emails (confirmations) with aiosmtplib and the `[smtp]` settings.

A small stand-in for the delivery module's SMTP client: one connection per message, TLS
as configured (certificates verified, `ca_file` trusted in addition), a timeout, and
failures raised as `DeliveryError`. The web takes any `send_message` callable, so this
can be swapped for the shared client without touching the web.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import aiosmtplib

from digestd.config import SmtpSettings
from digestd.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)

SendMessage = Callable[[EmailMessage], Awaitable[None]]


def make_tls_context(smtp: SmtpSettings) -> ssl.SSLContext | None:
    if smtp.security == "none":
        return None
    context = ssl.create_default_context()
    if smtp.ca_file:
        context.load_verify_locations(cafile=smtp.ca_file)
    return context


async def send_with_smtp(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Hand one message to the SMTP server, or raise `DeliveryError`."""
    try:
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username or None,
            password=smtp.password or None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            tls_context=make_tls_context(smtp),
            timeout=smtp.timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        log.warning("SMTP %s:%s refused or failed: %s", smtp.host, smtp.port, type(error).__name__)
        raise DeliveryError(
            f"cannot send mail through {smtp.host}:{smtp.port}: {error}", hint="check the [smtp] settings"
        ) from None
    log.info("sent %s through %s:%s", message.get("Subject", ""), smtp.host, smtp.port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_smtp_sender(smtp: SmtpSettings) -> SendMessage:
    """The `send_message` callable the web app takes, bound to these settings.

    `security = "none"` is refused for anything but a loopback server."""
    if smtp.security == "none" and not is_loopback(smtp.host):
        raise ConfigError(
            f"smtp.security = 'none' is only allowed for a server on this machine, not {smtp.host}",
            hint="use starttls or tls",
        )

    async def send_message(message: EmailMessage) -> None:
        await send_with_smtp(smtp, message)

    return send_message
