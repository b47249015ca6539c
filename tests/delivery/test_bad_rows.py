"""One bad row never stops the others: an address the relay cannot take, a template that
fails on one subscriber's data, a bad value in the database. That row ends `perm_failed`
with its reason (shown by `digestd status`), it is not claimed again, and every other
subscriber is mailed exactly once: by `digestd send` (here or in render processes) and
by `digestd worker`, on SQLite and on PostgreSQL. A run that stops on an error still says
what it sent."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import logging
import re
import shutil
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from seeds import SECRET, T0, make_settings, seed_database
from sinks import Sink
from sqlalchemy import Engine, text, update
from sqlmodel import col
from test_send import LATER, run_send, statuses
from test_send_process import seed_due_now, write_config

from digestd.cli import cli
from digestd.config import MailSettings, Settings
from digestd.daemon.scheduler import DaemonJobs
from digestd.delivery.ledger import PENDING, PERM_FAILED, SENT, UNKNOWN
from digestd.delivery.send import plan_due
from digestd.delivery.worker import run_worker
from digestd.errors import InputError
from digestd.mail.render import make_email_builder
from digestd.mail.templates import templates_dir
from digestd.models import Subscriber, Suppression
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


def greeting_templates(tmp_path: Path) -> MailSettings:
    """The shipped templates, greeting the subscriber by first name: fine on the start-up
    sample (named "Sample"), an IndexError for a subscriber without a name."""
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(MailSettings()), folder)
    text_template = folder / "digest.txt"
    text_template.write_text("Hello {{ name.split()[0] }},\n" + text_template.read_text())
    return MailSettings(templates_dir=str(folder))


def plant_bad_rows(engine: Engine, *, good: int) -> tuple[list[str], list[str]]:
    """`good` subscribers with names, and among them one without a name (the template
    fails on it) and one whose address is not an address (a bad value in the database)."""
    emails = seed_database(engine, subscribers=good + 2)
    nameless, broken = emails[good // 2], emails[good // 2 + 1]
    with open_session(engine) as session:
        session.execute(update(Subscriber).values(name="Ada Reader"))
        session.execute(update(Subscriber).where(col(Subscriber.email) == nameless).values(name=""))
        invalid = "broken\r\nRCPT TO:<victim@example.net>"
        session.execute(update(Subscriber).where(col(Subscriber.email) == broken).values(email=invalid))
    return [e for e in emails if e not in (nameless, broken)], [nameless, invalid]


def with_templates(settings: Settings, mail: MailSettings) -> Settings:
    return replace(settings, mail=replace(settings.mail, templates_dir=mail.templates_dir))


def check_bad_rows_failed_alone(engine: Engine, sink: Sink, good: list[str], bad: list[str]) -> None:
    assert received(sink) == Counter(good)
    ledger, why = statuses(engine), reasons(engine)
    assert {ledger[address] for address in good} == {SENT}
    assert [ledger[address] for address in bad] == [PERM_FAILED, PERM_FAILED]
    assert "digest.txt" in why[bad[0]] and "has no element 0" in why[bad[0]]
    assert "not a valid address" in why[bad[1]]
    shown = status_output(engine)
    assert f"{bad[0]} (2026-11-30): perm_failed" in shown and "has no element 0" in shown


@pytest.mark.parametrize("render_processes", [0, 1])
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_row_that_cannot_be_built_fails_alone_and_the_run_goes_on(
    database: str, render_processes: int, request: pytest.FixtureRequest, start_sink: Any, tmp_path: Path
) -> None:
    engine: Engine = request.getfixturevalue("engine" if database == "sqlite" else "pg")
    sink: Sink = start_sink()
    good, bad = plant_bad_rows(engine, good=8)
    settings = with_templates(
        make_settings(sink, batch_size=4, render_processes=render_processes), greeting_templates(tmp_path)
    )
    report = run_send(engine, settings)
    assert (report.sent, report.failed, report.errors) == (8, 2, [])
    check_bad_rows_failed_alone(engine, sink, good, bad)
    again = run_send(engine, settings, now=LATER.replace(hour=12))  # failed rows are not claimed again
    assert (again.sent, again.failed, len(sink.handler.messages)) == (0, 0, 8)


def test_a_worker_fails_a_bad_row_alone(pg: Engine, start_sink: Any, tmp_path: Path) -> None:
    sink: Sink = start_sink()
    good, bad = plant_bad_rows(pg, good=6)
    settings = with_templates(make_settings(sink, batch_size=3), greeting_templates(tmp_path))
    assert plan_due(pg, now=LATER) == 8
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    state = asyncio.run(
        run_worker(pg, settings, builder, clock=lambda: LATER, stop=asyncio.Event(), exit_when_idle=True)
    )
    assert (state.report.sent, state.report.failed) == (6, 2)
    check_bad_rows_failed_alone(pg, sink, good, bad)


def test_a_run_that_fails_still_says_what_it_sent(engine: Engine, start_sink: Any, tmp_path: Path) -> None:
    """The relay drops a connection inside DATA and then refuses new ones: the run stops
    with an error, after the summary of what went out and what is unknown."""
    sink: Sink = start_sink()
    emails = seed_due_now(engine)
    sink.handler.rules[("DATA", emails[5])] = ["drop and refuse"]
    config = write_config(tmp_path, engine, sink)
    result = CliRunner(env={"DIGESTD_SECRET_KEY": SECRET}).invoke(cli, ["--config", str(config), "send"])
    assert result.exit_code == 1, result.output
    summary = re.search(
        r"^sent (\d+), retrying 0, failed 0, unknown 1, skipped 0 \(24 newly planned\)$", result.output, re.M
    )
    assert summary, result.output
    error = re.search(r"^error: cannot connect to the SMTP server", result.output, re.M)
    assert error and error.start() > summary.end()
    ledger = statuses(engine)
    assert int(summary.group(1)) == len(sink.handler.messages) == sum(s == SENT for s in ledger.values()) > 0
    assert ledger[emails[5]] == UNKNOWN and "--resend-unknown" in result.output


def test_the_daemon_tick_fails_a_bad_row_alone_and_logs_what_it_sent_when_it_stops(
    engine: Engine, start_sink: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink: Sink = start_sink()
    good, bad = plant_bad_rows(engine, good=6)
    sink.handler.rules[("DATA", good[3])] = ["drop and refuse"]
    settings = with_templates(make_settings(sink, connections=1), greeting_templates(tmp_path))
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    jobs = DaemonJobs(engine, settings, builder, asyncio.Event(), clock=lambda: LATER)
    with caplog.at_level(logging.INFO, logger="digestd"):
        asyncio.run(jobs.tick())
    ledger = statuses(engine)
    assert received(sink) == Counter(good[:3]) and [ledger[address] for address in bad] == [PERM_FAILED] * 2
    assert (ledger[good[3]], ledger[good[4]]) == (UNKNOWN, PENDING)
    stopped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tick: delivery stopped")]
    assert len(stopped) == 1 and "cannot connect to the SMTP server" in stopped[0]
    assert stopped[0].endswith("(before that: sent 3, retrying 0, failed 2, unknown 1, skipped 0 (8 newly planned))")


def test_a_dry_run_names_the_row_that_would_fail_and_writes_the_others(
    run: Any, engine: Engine, tmp_path: Path
) -> None:
    good, bad = plant_bad_rows(engine, good=2)
    with open_session(engine) as session:  # due whatever the real clock says
        session.execute(update(Subscriber).values(next_due_at=T0))
    result = run("send", "--dry-run", "--out", str(tmp_path / "outbox"))
    assert result.exit_code == 0, result.output
    assert "broken\\r\\nRCPT TO:<victim@example.net>' is not a valid address" in result.output
    assert sorted(path.name.split("-")[0] for path in (tmp_path / "outbox").iterdir()) == sorted(good + [bad[0]])


def test_values_sqlite_cannot_read_back_fail_their_row_alone(engine: Engine, start_sink: Any) -> None:
    """SQLite keeps whatever was written into a column (a text in a date or a number
    column, by another tool or a bad restore): that subscriber cannot be loaded or ranked."""
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=6)
    unreadable, unrankable = emails[1], emails[4]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE subscriber SET created_at = 'last tuesday' WHERE email = :e"), {"e": unreadable}
        )
        subscriber = "(SELECT id FROM subscriber WHERE email = :e)"
        connection.execute(
            text(f"UPDATE profile_item SET weight = 'heavy' WHERE subscriber_id = {subscriber}"), {"e": unrankable}
        )
    report = run_send(engine, make_settings(sink, batch_size=3))
    assert (report.sent, report.failed) == (4, 2)
    assert received(sink) == Counter(e for e in emails if e not in (unreadable, unrankable))
    why = reasons(engine)
    assert statuses(engine)[unreadable] == statuses(engine)[unrankable] == PERM_FAILED
    assert "cannot build this message: ValueError" in why[unreadable], why
    assert "cannot build this message: TypeError" in why[unrankable], why


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_schedule_that_cannot_be_planned_fails_alone(
    database: str, request: pytest.FixtureRequest, start_sink: Any
) -> None:
    """A timezone that a tzdata update removed (US/Pacific-New went in 2020), or a send time
    written by hand into the database: that subscriber's digest is recorded as failed, with
    the reason, and planned again a day later; the others are planned and mailed."""
    engine: Engine = request.getfixturevalue("engine" if database == "sqlite" else "pg")
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=5)
    with open_session(engine) as session:
        session.execute(update(Subscriber).where(col(Subscriber.email) == emails[1]).values(timezone="US/Pacific-New"))
        session.execute(update(Subscriber).where(col(Subscriber.email) == emails[3]).values(send_time="8 am"))
    report = run_send(engine, make_settings(sink))
    assert (report.planned, report.sent) == (5, 3)
    assert received(sink) == Counter([emails[0], emails[2], emails[4]])
    ledger, why = statuses(engine), reasons(engine)
    assert (ledger[emails[1]], ledger[emails[3]]) == (PERM_FAILED, PERM_FAILED)
    assert "cannot plan this digest" in why[emails[1]] and "US/Pacific-New" in why[emails[1]]
    assert "cannot plan this digest" in why[emails[3]] and "ValueError" in why[emails[3]]
    assert f"{emails[1]} (2026-11-30): perm_failed" in status_output(engine)
    assert run_send(engine, make_settings(sink), now=LATER.replace(hour=12)).planned == 0
    with open_session(engine) as session:
        assert get_subscriber(session, emails[1]).next_due_at == LATER + timedelta(days=1)


def test_suppressions_recorded_before_domains_were_stored_in_ascii_still_hold(engine: Engine, start_sink: Any) -> None:
    """The suppression list keeps hashes of addresses as they were stored then (domain in
    Unicode): a wiped `@bücher` address is still refused, a bounced one still not mailed."""
    sink: Sink = start_sink()
    old_hash = hashlib.sha256(BUCHER.encode()).hexdigest()
    add(engine, "bounced@bücher.example.com")
    with open_session(engine) as session:
        session.add(Suppression(email_hash=old_hash, reason="wiped", created_at=T0))
        bounced = hashlib.sha256(b"bounced@b\xc3\xbccher.example.com").hexdigest()
        session.add(Suppression(email_hash=bounced, reason="550 5.1.1", created_at=T0))
    with pytest.raises(InputError, match="suppression list"), open_session(engine) as session:
        add_subscriber(session, SubscriberInput(email=BUCHER, keywords="x"), defaults=Settings().digest, now=T0)
    report = run_send(engine, make_settings(sink), emails=["bounced@xn--bcher-kva.example.com"])
    assert (report.sent, report.skipped, sink.handler.messages) == (0, 1, [])
