"""Serve the web app with uvicorn: alone (`digestd web`) or inside the daemon's loop.

`serve_web` binds the socket itself (so a busy port is a clean `ConfigError`, not
uvicorn's `sys.exit`), leaves signals to the caller, and stops when `stop_event` is set.
uvicorn's access log is off: the URLs carry tokens that must not reach log files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator
from datetime import datetime

import uvicorn
from sqlalchemy import Engine

from digestd.config import Settings
from digestd.errors import ConfigError
from digestd.web.app import _utc_now, create_app
from digestd.web.mailer import SendMessage, make_smtp_sender

log = logging.getLogger(__name__)


def parse_bind(text: str) -> tuple[str, int]:
    """`127.0.0.1:8080` or `[::1]:8080` → (host, port), or a `ConfigError` naming web.bind."""
    host, _, port_text = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"web.bind = {text!r} is not allowed: use HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port_text)


def bind_socket(bind: str) -> socket.socket:
    host, port = parse_bind(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on web.bind = {bind!r}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (the daemon, or `run_web`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_web(
    settings: Settings,
    engine: Engine,
    *,
    send_message: SendMessage,
    stop_event: asyncio.Event,
    sock: socket.socket | None = None,
    now: Callable[[], datetime] = _utc_now,
) -> None:
    """Serve until `stop_event` is set, then finish open requests and return."""
    app = create_app(settings, engine, send_message=send_message, now=now)
    sock = sock or bind_socket(settings.web.bind)
    config = uvicorn.Config(
        app,
        proxy_headers=True,
        forwarded_allow_ips=settings.web.forwarded_allow_ips,
        access_log=False,
        log_config=None,
        lifespan="on",  # the app's sign-up sender runs in it
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = EmbeddedServer(config)
    host, port = sock.getsockname()[:2]
    log.info("web: listening on %s:%s (links use %s)", host, port, settings.mail.base_url)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop_event.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving
    sock.close()


async def _serve_until_signal(settings: Settings, engine: Engine) -> None:
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    await serve_web(settings, engine, send_message=make_smtp_sender(settings.smtp), stop_event=stop_event)


def run_web(settings: Settings, engine: Engine) -> None:
    """Serve the web app alone until SIGINT or SIGTERM (what `digestd web` runs)."""
    asyncio.run(_serve_until_signal(settings, engine))
