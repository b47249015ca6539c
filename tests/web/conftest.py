"""Fixtures of the web tests: a real SMTP sink, the real app under uvicorn, Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import launch_chromium
from sqlalchemy import Engine
from web_support import RecordingHandler, RunningWeb, make_settings, start_smtp_sink

from digestd.config import SmtpSettings
from digestd.web.mailer import make_smtp_sender


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def sink() -> Iterator[tuple[RecordingHandler, SmtpSettings]]:
    """An aiosmtpd server on loopback that records what arrives, and the settings to reach it."""
    controller, handler, smtp = start_smtp_sink()
    yield handler, smtp
    controller.stop()


@pytest.fixture
def web(engine: Engine, sink: tuple[RecordingHandler, SmtpSettings]) -> Iterator[RunningWeb]:
    """The app on a free port, mailing through `sink`."""
    with RunningWeb(make_settings, engine, make_smtp_sender(sink[1])) as running:
        yield running
