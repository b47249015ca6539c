"""Send the web's own emails (confirmations) with aiosmtplib and the `[smtp]` settings.

One connection per message (confirmations are rare), with the delivery module's security
rules and TLS context (certificates verified, `ca_file` trusted in addition), a timeout,
and failures raised as `DeliveryError`. The web takes any `send_message` callable, so this
can be swapped for the shared client without touching the web.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import aiosmtplib

from digestd.config import SmtpSettings
from digestd.delivery.smtp import check_security, make_tls_context
from digestd.errors import DeliveryError

log = logging.getLogger(__name__)

SendMessage = Callable[[EmailMessage], Awaitable[None]]


async def send_with_smtp(
    smtp: SmtpSettings, message: EmailMessage, *, tls_context: ssl.SSLContext | None = None
) -> None:
    """Hand one message to the SMTP server, or raise `DeliveryError`."""
    if tls_context is None and smtp.security != "none":
        tls_context = make_tls_context(smtp)
    try:
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username or None,
            password=smtp.password or None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            tls_context=tls_context,
            timeout=smtp.timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        log.warning("SMTP %s:%s refused or failed: %s", smtp.host, smtp.port, type(error).__name__)
        raise DeliveryError(
            f"cannot send mail through {smtp.host}:{smtp.port}: {error}", hint="check the [smtp] settings"
        ) from None
    log.info("sent %s through %s:%s", message.get("Subject", ""), smtp.host, smtp.port)


def make_smtp_sender(smtp: SmtpSettings) -> SendMessage:
    """The `send_message` callable the web app takes, bound to these settings.

    `security = "none"` is refused for anything but a loopback server."""
    check_security(smtp)
    tls_context = None if smtp.security == "none" else make_tls_context(smtp)

    async def send_message(message: EmailMessage) -> None:
        await send_with_smtp(smtp, message, tls_context=tls_context)

    return send_message
