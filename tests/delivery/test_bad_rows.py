"""One bad row never stops the others: an address the relay cannot take, a template that
fails on one subscriber's data, a bad value in the database. That row ends `perm_failed`
with its reason (shown by `digestd status`), it is not claimed again, and every other
subscriber is mailed exactly once: by `digestd send` (here or in render processes) and
by `digestd worker`, on SQLite and on PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner
from seeds import T0, make_settings, seed_database
from sinks import Sink
from sqlalchemy import Engine, text, update
from sqlmodel import col
from test_send import LATER, run_send, statuses

from digestd.cli import cli
from digestd.config import Settings
from digestd.delivery.ledger import PERM_FAILED, SENT
from digestd.models import Subscriber
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber, get_subscriber

ZOE = "zoë@inbox.example.com"
BUCHER = "ascii@bücher.example.com"
BUCHER_ASCII = "ascii@xn--bcher-kva.example.com"


def add(engine: Engine, address: str, *, name: str = "") -> None:
    with open_session(engine) as session:
        given = SubscriberInput(email=address, name=name, keywords="graph neural networks, diffusion models")
        add_subscriber(session, given, defaults=Settings().digest, now=T0)


def received(sink: Sink) -> Counter[str]:
    return Counter(r for m in sink.handler.messages for r in m.recipients)


def reasons(engine: Engine) -> dict[str, str]:
    with open_session(engine) as session:
        rows = session.execute(
            text("SELECT s.email, d.last_error FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id")
        )
        return {address: reason or "" for address, reason in rows}


def status_output(engine: Engine) -> str:
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--database", url, "status"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_non_ascii_domain_is_stored_in_its_ascii_form(engine: Engine) -> None:
    add(engine, "Ascii@Bücher.Example.com")
    with open_session(engine) as session:
        assert get_subscriber(session, BUCHER).email == BUCHER_ASCII
        assert get_subscriber(session, BUCHER_ASCII).email == BUCHER_ASCII


@pytest.mark.parametrize("smtputf8", [True, False], ids=["smtputf8-offered", "smtputf8-not-offered"])
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_non_ascii_addresses_do_not_stop_the_others(
    database: str, smtputf8: bool, request: pytest.FixtureRequest, start_sink: Any
) -> None:
    """`zoë@` goes out with SMTPUTF8 when the relay offers it, else fails alone with a
    reason; `@bücher` goes out to its ASCII form either way; the others are all mailed."""
    engine: Engine = request.getfixturevalue("engine" if database == "sqlite" else "pg")
    sink: Sink = start_sink(smtputf8=smtputf8)
    good = seed_database(engine, subscribers=4)
    add(engine, ZOE, name="Zoë")
    add(engine, BUCHER)
    settings = make_settings(sink, connections=1)
    report = run_send(engine, settings)
    expected = dict.fromkeys([*good, BUCHER_ASCII], 1)
    ledger = statuses(engine)
    if smtputf8:
        assert (report.sent, report.failed) == (6, 0)
        assert received(sink) == Counter({**expected, ZOE: 1})
        message = next(m for m in sink.handler.messages if m.recipients == [ZOE])
        assert "SMTPUTF8" in message.mail_options
        parsed = email.message_from_string(message.data.decode(), policy=email.policy.default)  # UTF-8 headers
        assert parsed["To"].addresses[0].addr_spec == ZOE and parsed["To"].addresses[0].display_name == "Zoë"
        assert ledger[ZOE] == SENT
    else:
        assert (report.sent, report.failed) == (5, 1)
        assert received(sink) == Counter(expected)
        assert ledger[ZOE] == PERM_FAILED
        assert "SMTPUTF8" in reasons(engine)[ZOE]
        assert f"{ZOE} (2026-11-30): perm_failed" in status_output(engine)
    assert all(m.mail_options.count("SMTPUTF8") == 0 for m in sink.handler.messages if m.recipients != [ZOE])
    assert {ledger[address] for address in expected} == {SENT}
    again = run_send(engine, settings, now=LATER.replace(hour=12))
    assert (again.sent, again.failed, len(sink.handler.messages)) == (0, 0, len(expected) + smtputf8)


def test_an_address_stored_with_a_non_ascii_domain_is_sent_to_its_ascii_form(engine: Engine, start_sink: Any) -> None:
    """Rows written before domains were stored in ASCII are converted at send time."""
    sink: Sink = start_sink()
    good = seed_database(engine, subscribers=2)
    add(engine, BUCHER)
    with open_session(engine) as session:
        session.execute(update(Subscriber).where(col(Subscriber.email) == BUCHER_ASCII).values(email=BUCHER))
    assert run_send(engine, make_settings(sink)).sent == 3
    assert received(sink) == Counter([*good, BUCHER_ASCII])
    message = next(m for m in sink.handler.messages if m.recipients == [BUCHER_ASCII])
    assert "SMTPUTF8" not in message.mail_options
    assert email.message_from_bytes(message.data, policy=email.policy.default)["To"] == BUCHER_ASCII
