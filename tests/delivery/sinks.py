"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1 with a recording handler
that can inject replies at chosen commands, or drop the connection inside DATA."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from digestd.config import SmtpSettings


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    at: float
    mail_options: list[str] = field(default_factory=list)


@dataclass
class SinkHandler:
    """Records accepted messages. `rules[(COMMAND, recipient)]` is a list of replies used one
    per attempt ("drop" at DATA closes the connection before the reply; "drop and refuse"
    also stops listening, so that reconnecting fails)."""

    messages: list[Received] = field(default_factory=list)
    dropped: list[Received] = field(default_factory=list)
    rules: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    delay: float = 0.0
    eight_bit: bool = True  # offer 8BITMIME in the EHLO reply (aiosmtpd does by default)
    controller: Any = None  # the aiosmtpd Controller serving this handler

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return responses if self.eight_bit else [r for r in responses if "8BITMIME" not in r]

    def _rule(self, command: str, recipient: str) -> str | None:
        replies = self.rules.get((command, recipient)) or self.rules.get((command, "*"))
        return replies.pop(0) if replies else None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self._rule("MAIL", "*")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self._rule("RCPT", address)
        if reply == "drop":
            server.transport.close()
            return "250 never seen"
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        options = list(envelope.mail_options)
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, time.time(), options)
        reply = self._rule("DATA", envelope.rcpt_tos[0])
        if reply in ("drop", "drop and refuse"):
            self.dropped.append(received)
            server.transport.close()
            if reply == "drop and refuse":
                self.controller.server.close()
            return "250 never seen"
        if reply:
            return reply
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(received)
        return "250 Message accepted"

    def count_to(self, address: str) -> int:
        return sum(address in m.recipients for m in self.messages)


@dataclass
class Sink:
    host: str
    port: int
    handler: SinkHandler
    ca_file: str = ""

    def smtp_settings(self, **changes: Any) -> SmtpSettings:
        base = SmtpSettings(host=self.host, port=self.port, security="none", ca_file=self.ca_file, timeout_seconds=5)
        return replace(base, **changes)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"digest", b"s3cret")
    return AuthResult(success=ok, handled=False)
