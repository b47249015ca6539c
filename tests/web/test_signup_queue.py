"""Sign-up mail goes through a queue: the answer never waits for the mail server and is the
same for every address; a refusing server is retried; a stopping web keeps what is queued."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, func
from sqlmodel import select
from starlette.testclient import TestClient
from web_support import (
    START,
    Clock,
    Outbox,
    RecordingHandler,
    RunningWeb,
    csrf_of,
    free_port,
    make_settings,
    queue_done,
)

from digestd.config import DigestSettings, SmtpSettings
from digestd.errors import DeliveryError
from digestd.models import SignupRequest, Suppression
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber, check_input, email_hash, wipe_subscriber
from digestd.web.app import create_app
from digestd.web.mailer import make_smtp_sender
from digestd.web.signup_queue import queue_signup


class HoldingHandler(RecordingHandler):
    """A relay that holds its answer to DATA until `release` is set (at most 60 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_data = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.in_data.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def holding_sink() -> Iterator[tuple[HoldingHandler, SmtpSettings]]:
    handler = HoldingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=90)
    finally:
        handler.release.set()
        controller.stop()


def form(email: str, csrf: str) -> dict[str, str]:
    return {"csrf": csrf, "email": email, "keywords": "graphs", "frequency": "weekly", "day": "mon", "time": "08:00",
            "timezone": "UTC"}  # fmt: skip


def queued(engine: Engine) -> int:
    with open_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(SignupRequest)) or 0)


def test_the_answer_comes_before_the_mail_and_is_the_same_for_a_suppressed_address(
    engine: Engine, holding_sink: tuple[HoldingHandler, SmtpSettings]
) -> None:
    handler, smtp = holding_sink
    with open_session(engine) as session:
        session.add(Suppression(email_hash=email_hash("gonex@example.org"), reason="wiped", created_at=START))
    with (
        RunningWeb(make_settings, engine, make_smtp_sender(smtp)) as web,
        httpx.Client(base_url=web.base_url) as browser,
    ):
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', browser.get("/subscribe").text).group(1)  # type: ignore[union-attr]
        fresh = browser.post("/subscribe", data=form("fresh@example.org", csrf), timeout=20)
        assert handler.in_data.wait(60)  # the confirmation is on the wire, its 250 held back ...
        assert fresh.status_code == 200 and handler.messages == []  # ... and the answer came anyway
        gone = browser.post("/subscribe", data=form("gonex@example.org", csrf), timeout=20)
        assert (gone.status_code, gone.text.replace("gonex", "fresh")) == (fresh.status_code, fresh.text)
        assert {k: v for k, v in gone.headers.items() if k != "date"} == {
            k: v for k, v in fresh.headers.items() if k != "date"
        }
        handler.release.set()
        (message,) = handler.wait_for(1, timeout=60)
        assert message["To"] == "fresh@example.org" and "confirm" in message["Subject"]
        queue_done(engine)  # the suppressed one: handled, and nothing mailed
        assert len(handler.messages) == 1


def test_a_refusing_mail_server_is_retried_until_it_takes_the_mail(engine: Engine) -> None:
    outbox, refusals = Outbox(), []

    async def flaky(message: EmailMessage) -> None:
        if len(refusals) < 2:
            refusals.append(message)
            raise DeliveryError("cannot send mail through smtp.example:587: 451 try again later")
        await outbox(message)

    app = create_app(make_settings(), engine, send_message=flaky, now=Clock(), retry_seconds=(0.05,))
    with TestClient(app) as client:
        assert client.post("/subscribe", data=form("ada@example.org", csrf_of(client))).status_code == 200
        (message,) = outbox.wait_for(1)
        assert len(refusals) == 2 and message["To"] == "ada@example.org"
        assert client.post(outbox.last_link("confirm"), data={"csrf": csrf_of(client)}).status_code == 200


def test_a_stopping_web_keeps_the_queue_and_the_next_one_mails_it(engine: Engine) -> None:
    attempts = []

    async def down(message: EmailMessage) -> None:
        attempts.append(message)
        raise DeliveryError("cannot send mail through smtp.example:587: connection refused")

    with TestClient(create_app(make_settings(), engine, send_message=down, now=Clock(), retry_seconds=(0.05,))) as c:
        assert c.post("/subscribe", data=form("ada@example.org", csrf_of(c))).status_code == 200
        Outbox(attempts).wait_for(2)  # type: ignore[arg-type]  # tried, and tried again
    assert queued(engine) == 1  # stopped: kept, not lost
    outbox = Outbox()
    with TestClient(create_app(make_settings(), engine, send_message=outbox, now=Clock())) as client:
        (message,) = outbox.wait_for(1)
        assert message["To"] == "ada@example.org"
        assert client.post(outbox.last_link("confirm"), data={"csrf": csrf_of(client)}).status_code == 200
    assert queued(engine) == 0


def test_wipe_deletes_a_queued_sign_up(engine: Engine) -> None:
    with open_session(engine) as session:
        add_subscriber(
            session, SubscriberInput(email="ada@example.org", keywords="x"), defaults=DigestSettings(), now=START
        )
        queue_signup(session, check_input(SubscriberInput(email="ada@example.org", keywords="graphs")))
        queue_signup(session, check_input(SubscriberInput(email="bob@example.org", keywords="graphs")))
    with open_session(engine) as session:
        wipe_subscriber(session, "Ada@example.org", now=START)
    with open_session(engine) as session:
        assert [row.email for row in session.scalars(select(SignupRequest))] == ["bob@example.org"]


def test_a_queued_sign_up_the_checks_refuse_is_dropped_loudly_and_the_next_one_mailed(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with open_session(engine) as session:
        queue_signup(session, SubscriberInput(email="bad@example.org", keywords="x", timezone="Mars/Olympus"))
        queue_signup(session, check_input(SubscriberInput(email="ada@example.org", keywords="graphs")))
    outbox = Outbox()
    with TestClient(create_app(make_settings(), engine, send_message=outbox, now=Clock())):
        (message,) = outbox.wait_for(1)
        queue_done(engine)
    assert message["To"] == "ada@example.org"
    assert "a queued sign-up was refused and dropped: timezone 'Mars/Olympus'" in caplog.text
