"""Helpers for the web tests: settings, a settable clock, an outbox, a real SMTP sink."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from processes import DEADLINE_SECONDS, wait_until
from starlette.testclient import TestClient

from digestd.config import MailSettings, Settings, SmtpSettings, WebSettings

SECRET = "test-secret-key-for-links"
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def make_settings(base_url: str = "http://testserver", **web: Any) -> Settings:
    return Settings(
        mail=MailSettings(from_="Paper Digest <digest@example.org>", base_url=base_url),
        web=WebSettings(**web),
        secret_key=SECRET,
    )


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Outbox:
    """A `send_message` that keeps what it was given (the seam the web takes)."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def __call__(self, message: EmailMessage) -> None:
        self.messages.append(message)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[EmailMessage]:
        """The messages once at least `count` arrived (the app's sender mails after the answer)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"only {len(self.messages)} message(s) arrived"
            time.sleep(0.02)
        return self.messages

    def last_link(self, kind: str) -> str:
        body = self.messages[-1].get_content()
        match = re.search(rf"https?://[^/\s]+(/{kind}/\S+)", body)
        assert match, body
        return match.group(1)


def queue_done(engine: Any, timeout: float = 60.0) -> None:
    """Wait until the app's sign-up sender has handled every queued sign-up."""
    from sqlalchemy import func, select

    from digestd.models import SignupRequest

    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as connection:
            if not connection.scalar(select(func.count()).select_from(SignupRequest)):
                return
        assert time.monotonic() < deadline, "the queued sign-ups were not handled"
        time.sleep(0.02)


def post_signup(client: TestClient, data: dict[str, Any]) -> Any:
    """POST the sign-up form, then wait until the app's sender has handled it."""
    response = client.post("/subscribe", data=data)
    queue_done(client.app.state.web.engine)  # type: ignore[attr-defined]
    return response


def old_token(secret: str, kind: str, subscriber_id: int) -> str:
    """A token as digestd signed them before link keys (revision 0005 and older)."""
    key = hashlib.sha256(b"digestd-token-v1|" + secret.encode()).digest()
    payload = f"{kind}\x1f{subscriber_id}".encode()
    signature = hmac.digest(key, payload, "sha256")[:16]
    return ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (payload, signature))


def csrf_of(client: TestClient, path: str = "/subscribe") -> str:
    """GET a page with a form and return its CSRF field (the client keeps the cookie)."""
    page = client.get(path)
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, page.text
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = DEADLINE_SECONDS) -> list[EmailMessage]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
        assert len(self.messages) >= count, f"only {len(self.messages)} message(s) arrived"
        return self.messages


def start_smtp_sink() -> tuple[Controller, RecordingHandler, SmtpSettings]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    smtp = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=10)
    return controller, handler, smtp


class RunningWeb:
    """The real app under uvicorn (`serve_web`) on a free loopback port, in a thread."""

    def __init__(self, settings_for_port: Any, engine: Any, send_message: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = settings_for_port(self.base_url)
        self._engine, self._send = engine, send_message
        self._loop: Any = None
        self._stop: Any = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        import asyncio

        from digestd.web.server import serve_web

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            await serve_web(self.settings, self._engine, send_message=self._send, stop_event=self._stop, sock=self.sock)

        try:
            asyncio.run(main())
        except BaseException as error:  # reported by stop()
            self.error = error
            self._started.set()

    def __enter__(self) -> RunningWeb:
        self._thread.start()
        try:
            wait_until(self._answers, f"the web app answers at {self.base_url}", progress=lambda: repr(self.error))
        except BaseException:
            self._shut_down()
            raise
        return self

    def _answers(self) -> bool:
        import httpx

        assert self.error is None, f"the web app did not start: {self.error!r}"
        try:
            httpx.get(self.base_url + "/static/style.css", timeout=DEADLINE_SECONDS)
            return True
        except httpx.TransportError:
            return False

    def _shut_down(self) -> None:
        self._started.wait(DEADLINE_SECONDS)
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: it stopped by itself
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(DEADLINE_SECONDS)

    def __exit__(self, *exc: object) -> None:
        self._shut_down()
        assert not self._thread.is_alive(), "the web app did not stop"
        assert self.error is None, self.error
