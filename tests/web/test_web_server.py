"""The web under real uvicorn on loopback, its SMTP sender against a real aiosmtpd, `digestd web`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from web_support import SECRET, START, RecordingHandler, RunningWeb, free_port, make_settings, start_smtp_sink

from digestd.cli import cli
from digestd.config import DigestSettings, SmtpSettings
from digestd.errors import ConfigError, DeliveryError
from digestd.mail.tokens import TokenSigner
from digestd.models import Subscriber
from digestd.records import UNSUBSCRIBED
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber
from digestd.web.mailer import make_smtp_sender, send_with_smtp
from digestd.web.server import parse_bind


@pytest.fixture
def sink() -> Iterator[tuple[RecordingHandler, SmtpSettings]]:
    controller, handler, smtp = start_smtp_sink()
    yield handler, smtp
    controller.stop()


def test_the_smtp_sender_delivers_to_a_real_server(sink: tuple[RecordingHandler, SmtpSettings]) -> None:
    handler, smtp = sink
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "d@example.org", "ada@example.org", "Hello"
    message.set_content("body")
    asyncio.run(send_with_smtp(smtp, message))
    (received,) = handler.wait_for(1)
    assert received["Subject"] == "Hello" and received.get_content().strip() == "body"


def test_an_unreachable_smtp_server_is_a_delivery_error() -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=free_port(), security="none", timeout_seconds=5)
    message = EmailMessage()
    message["From"], message["To"] = "d@example.org", "ada@example.org"
    with pytest.raises(DeliveryError, match="cannot send mail through 127.0.0.1"):
        asyncio.run(send_with_smtp(smtp, message))


def test_one_click_unsubscribe_over_real_http(engine: Engine) -> None:
    with open_session(engine) as session:
        added = add_subscriber(
            session, SubscriberInput(email="ada@example.org", keywords="optics"), defaults=DigestSettings(), now=START
        )
        subscriber_id, link_key = added.id, added.link_key
    assert subscriber_id is not None

    async def no_mail(message: EmailMessage) -> None:
        raise AssertionError("no mail expected")

    with RunningWeb(make_settings, engine, no_mail) as web:
        url = f"{web.base_url}/unsubscribe/{TokenSigner(SECRET).sign_unsubscribe(subscriber_id, link_key)}"
        response = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
        assert response.status_code == 200 and "set-cookie" not in response.headers
        assert "server" not in response.headers
    with open_session(engine) as session:
        found = session.get(Subscriber, subscriber_id)
        assert found is not None and found.status == UNSUBSCRIBED


def test_the_web_command_has_help_and_fails_cleanly(
    sqlite_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    help_text = CliRunner().invoke(cli, ["web", "--help"]).output
    assert "Example:" in help_text and "--bind HOST:PORT" in help_text
    monkeypatch.delenv("DIGESTD_SECRET_KEY", raising=False)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["--database", sqlite_url, "web", "--bind", "nonsense"])
    assert result.exit_code == 2 and "web.bind = 'nonsense' is not allowed" in result.stderr
    result = CliRunner().invoke(cli, ["--database", sqlite_url, "web"])
    assert result.exit_code == 2 and "DIGESTD_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.output and "serving" not in result.output


def test_parse_bind() -> None:
    assert parse_bind("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_bind("[::1]:80") == ("::1", 80)
    with pytest.raises(ConfigError):
        parse_bind("localhost")
    assert re.match(r"^\d+$", str(free_port()))


def test_plain_smtp_is_refused_for_a_remote_server() -> None:
    with pytest.raises(ConfigError, match="is not allowed for smtp.example.org: only for a loopback relay"):
        make_smtp_sender(SmtpSettings(host="smtp.example.org", security="none"))
    make_smtp_sender(SmtpSettings(host="::1", security="none"))
