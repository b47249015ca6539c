"""Fixtures for the email and delivery tests: a migrated SQLite file, a migrated PostgreSQL
database, and real aiosmtpd servers on 127.0.0.1 (plain, STARTTLS or implicit TLS with a
trustme CA, AUTH, SMTPUTF8)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from sinks import Sink, SinkHandler, authenticate, free_port


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def start_sink(test_ca: trustme.CA, tmp_path: Path) -> Iterator[Callable[..., Sink]]:
    """`start_sink(tls=None|"starttls"|"implicit", auth=False, smtputf8=False)` → a running `Sink`."""
    controllers: list[Controller] = []

    def start(*, tls: str | None = None, auth: bool = False, smtputf8: bool = False) -> Sink:
        handler = SinkHandler()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        test_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        ca_file = tmp_path / "ca.pem"
        test_ca.cert_pem.write_to_path(str(ca_file))
        options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        if tls == "implicit":
            options.update(ssl_context=context)
        if auth:
            options.update(authenticator=authenticate, auth_required=True)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="localhost", **options)
        controller.start()
        handler.controller = controller
        controllers.append(controller)
        return Sink("127.0.0.1", port, handler, str(ca_file))

    yield start
    for controller in controllers:
        controller.stop()
