"""Delivery against a real aiosmtpd server: security, the ledger, injected failures."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from seeds import DUE, make_settings, seed_database
from sinks import Sink
from sqlalchemy import Engine, insert, update
from sqlmodel import col, select

from digestd.config import MailSettings, Settings
from digestd.delivery.ledger import PENDING, PERM_FAILED, SENT, TEMP_FAILED, UNKNOWN, forget_sent_papers
from digestd.delivery.send import SendReport, plan_due, send_due
from digestd.errors import ConfigError, DeliveryError, RenderError
from digestd.mail.render import make_email_builder
from digestd.mail.templates import templates_dir
from digestd.models import Delivery, SentPaper, Subscriber, Suppression
from digestd.store import make_engine, migrate, open_session
from digestd.subscribers import email_hash, get_subscriber, load_profiles

LATER = DUE + timedelta(minutes=1)


def run_send(
    engine: Engine, settings: Settings, *, now: datetime = LATER, emails: Sequence[str] = (), **kw: Any
) -> SendReport:
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    stop = asyncio.Event()
    return asyncio.run(send_due(engine, settings, builder, clock=lambda: now, stop=stop, emails=emails, **kw))


def statuses(engine: Engine) -> dict[str, str]:
    with open_session(engine) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status).join(Delivery, col(Delivery.subscriber_id) == col(Subscriber.id))
        )
        return dict(rows.all())


def test_each_due_subscriber_gets_one_digest_and_the_ledger_says_so(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=6)
    report = run_send(engine, make_settings(sink))
    assert (report.planned, report.sent) == (6, 6)
    assert Counter(r for m in sink.handler.messages for r in m.recipients) == Counter(emails)
    assert set(statuses(engine).values()) == {SENT}
    with open_session(engine) as session:
        subscriber = get_subscriber(session, emails[0])
        assert subscriber.last_digest_at == LATER and subscriber.next_due_at == DUE + timedelta(days=7)
        row = session.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber.id)).one()
        assert row.attempts == 1 and row.message_id and row.paper_ids and row.sent_at == LATER
        sent = set(session.scalars(select(SentPaper.paper_id).where(SentPaper.subscriber_id == subscriber.id)))
        assert sent == set(row.paper_ids)
    again = run_send(engine, make_settings(sink), now=LATER + timedelta(minutes=5))
    assert (again.planned, again.sent, len(sink.handler.messages)) == (0, 0, 6)


def test_starttls_with_auth_and_a_private_ca(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink(tls="starttls", auth=True)
    seed_database(engine, subscribers=2)
    settings = make_settings(sink, security="starttls", username="digest", password="s3cret")
    assert run_send(engine, settings).sent == 2
    assert len(sink.handler.messages) == 2


def test_implicit_tls(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink(tls="implicit")
    seed_database(engine, subscribers=2)
    assert run_send(engine, make_settings(sink, security="tls")).sent == 2


def test_a_server_without_starttls_is_refused_and_nothing_is_lost(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    seed_database(engine, subscribers=2)
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        run_send(engine, make_settings(sink, security="starttls"))
    assert set(statuses(engine).values()) == {PENDING} and not sink.handler.messages


def test_an_unknown_certificate_is_refused(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink(tls="starttls")
    seed_database(engine, subscribers=1)
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        run_send(engine, make_settings(sink, security="starttls", ca_file=""))


def test_a_wrong_password_is_reported_with_a_hint(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink(tls="starttls", auth=True)
    seed_database(engine, subscribers=1)
    with pytest.raises(DeliveryError, match="refused the login") as caught:
        run_send(engine, make_settings(sink, security="starttls", username="digest", password="wrong"))
    assert "DIGESTD_SMTP_PASSWORD" in (caught.value.hint or "")
    assert set(statuses(engine).values()) == {PENDING}


def test_plaintext_to_a_remote_host_is_not_allowed(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    settings = make_settings(sink)
    with pytest.raises(ConfigError, match="loopback"):
        run_send(engine, replace(settings, smtp=replace(settings.smtp, host="smtp.example.org")))


@pytest.mark.parametrize(
    ("command", "reply"),
    [("MAIL", "421 4.7.0 closing, try later"), ("RCPT", "451 4.3.0 try again later"), ("DATA", "452 4.3.1 full")],
)
def test_4xx_is_retried_with_backoff_then_sent(engine: Engine, start_sink: Any, command: str, reply: str) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=3)
    target = "*" if command == "MAIL" else emails[1]
    sink.handler.rules[(command, target)] = [reply]
    report = run_send(engine, make_settings(sink, connections=1))
    assert (report.sent, report.retrying) == (2, 1)
    with open_session(engine) as session:
        row = session.scalars(select(Delivery).where(Delivery.status == TEMP_FAILED)).one()
        assert row.next_attempt_at == LATER + timedelta(minutes=5) and reply.split()[0] in (row.last_error or "")
    assert run_send(engine, make_settings(sink), now=LATER + timedelta(minutes=2)).sent == 0  # not yet
    assert run_send(engine, make_settings(sink), now=LATER + timedelta(minutes=6)).sent == 1
    assert sorted(r for m in sink.handler.messages for r in m.recipients) == emails


def test_a_4xx_that_lasts_too_long_becomes_a_permanent_failure(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=1)
    sink.handler.rules[("RCPT", emails[0])] = ["451 4.3.0 later"] * 5
    settings = make_settings(sink, retry_for_hours=0.2)
    assert run_send(engine, settings).retrying == 1
    assert run_send(engine, settings, now=LATER + timedelta(minutes=6)).failed == 1
    with open_session(engine) as session:
        assert "gave up after 2 attempts" in (session.scalars(select(Delivery.last_error)).one() or "")


def test_550_at_rcpt_fails_permanently_and_suppresses_the_address(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=2)
    sink.handler.rules[("RCPT", emails[0])] = ["550 5.1.1 no such user"]
    report = run_send(engine, make_settings(sink))
    assert (report.sent, report.failed) == (1, 1)
    with open_session(engine) as session:
        assert session.get(Suppression, email_hash(emails[0])) is not None
        assert get_subscriber(session, emails[0]).status == "suppressed"


def test_a_refused_sender_is_retried_not_failed(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    seed_database(engine, subscribers=2)
    sink.handler.rules[("MAIL", "*")] = ["553 5.7.1 sender not allowed"] * 2
    report = run_send(engine, make_settings(sink, connections=1))
    assert (report.retrying, report.failed) == (2, 0)
    with open_session(engine) as session:
        assert session.scalars(select(Suppression)).first() is None


def test_554_at_data_fails_without_suppressing(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=1)
    sink.handler.rules[("DATA", emails[0])] = ["554 5.7.1 message refused"]
    assert run_send(engine, make_settings(sink)).failed == 1
    with open_session(engine) as session:
        assert session.get(Suppression, email_hash(emails[0])) is None
    assert statuses(engine)[emails[0]] == PERM_FAILED


def test_a_connection_lost_before_data_is_retried_at_once(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=2)
    sink.handler.rules[("RCPT", emails[0])] = ["drop"]
    assert run_send(engine, make_settings(sink, connections=1)).sent == 2
    assert Counter(r for m in sink.handler.messages for r in m.recipients) == Counter(emails)


def test_a_connection_lost_inside_data_is_unknown_until_resend_is_asked(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=3)
    sink.handler.rules[("DATA", emails[2])] = ["drop"]
    report = run_send(engine, make_settings(sink, connections=1))
    assert (report.sent, report.unknown) == (2, 1)
    assert statuses(engine)[emails[2]] == UNKNOWN
    assert run_send(engine, make_settings(sink), now=LATER + timedelta(hours=5)).sent == 0
    assert run_send(engine, make_settings(sink), now=LATER + timedelta(hours=5), resend_unknown=True).sent == 1
    assert statuses(engine)[emails[2]] == SENT and sink.handler.count_to(emails[2]) == 1


def test_unsubscribes_and_suppressions_are_checked_at_claim_time(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=3)
    plan_due(engine, now=LATER)
    with open_session(engine) as session:
        get_subscriber(session, emails[0]).status = "unsubscribed"
        session.add(Suppression(email_hash=email_hash(emails[1]), reason="complaint", created_at=LATER))
    report = run_send(engine, make_settings(sink))
    assert (report.sent, report.skipped) == (1, 2)
    assert [m.recipients for m in sink.handler.messages] == [[emails[2]]]


def test_nothing_matched_is_skipped_unless_send_empty(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    seed_database(engine, subscribers=2, papers=0)
    settings = make_settings(sink)
    assert run_send(engine, settings).skipped == 2 and not sink.handler.messages
    with open_session(engine) as session:
        assert set(session.scalars(select(Subscriber.last_digest_at))) == {LATER}
    later = DUE + timedelta(days=7, minutes=1)
    assert run_send(engine, replace(settings, mail=replace(settings.mail, send_empty=True)), now=later).sent == 2
    assert b"nothing new matched" in sink.handler.messages[0].data


def test_after_downtime_one_catch_up_digest_not_one_per_period(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=1)
    late = DUE + timedelta(days=23)
    assert run_send(engine, make_settings(sink), now=late).sent == 1
    assert run_send(engine, make_settings(sink), now=late + timedelta(minutes=1)).planned == 0
    with open_session(engine) as session:
        subscriber = get_subscriber(session, emails[0])
        assert subscriber.next_due_at is not None and subscriber.next_due_at > late
        assert subscriber.last_digest_at == late


def test_named_subscribers_get_their_digest_now(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=3)
    early = DUE - timedelta(days=1)
    report = run_send(engine, make_settings(sink), now=early, emails=[emails[1]])
    assert (report.planned, report.sent) == (1, 1)
    assert [m.recipients for m in sink.handler.messages] == [[emails[1]]]


def test_the_rate_limit_holds_in_every_second_at_the_sink(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    seed_database(engine, subscribers=36)
    started = time.monotonic()
    assert run_send(engine, make_settings(sink, connections=4, rate_per_second=15)).sent == 36
    assert time.monotonic() - started >= 2.0
    per_second = Counter(int(m.at) for m in sink.handler.messages)
    assert max(per_second.values()) <= 15, per_second


def test_render_processes_send_the_same_messages_as_rendering_here(
    engine: Engine, start_sink: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With `smtp.render_processes`, other processes load, rank and render each batch; the
    messages at the sink are byte for byte those the sending process renders itself."""
    here: Sink = start_sink()
    seed_database(engine, subscribers=12)
    assert run_send(engine, make_settings(here, batch_size=5)).sent == 12
    other = make_engine(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    migrate(other)
    seed_database(other, subscribers=12)
    with open_session(engine) as session, open_session(other) as copy:  # the same link keys, so the same links
        for email, key in session.execute(select(Subscriber.email, Subscriber.link_key)):
            copy.execute(update(Subscriber).where(col(Subscriber.email) == email).values(link_key=key))
    pooled: Sink = start_sink()
    with caplog.at_level(logging.DEBUG, logger="digestd.delivery.batches"):
        report = run_send(other, make_settings(pooled, batch_size=5, render_processes=1))
    assert "ranking and rendering in 1 other process(es)" in caplog.messages
    assert (report.planned, report.sent) == (12, 12)
    assert set(statuses(other).values()) == {SENT}

    def by_recipient(sink: Sink) -> dict[str, bytes]:
        return {m.recipients[0]: m.data for m in sink.handler.messages}

    assert by_recipient(pooled) == by_recipient(here)
    other.dispose()


def test_a_template_error_in_a_render_process_is_reported_and_nothing_is_lost(
    engine: Engine, start_sink: Any, tmp_path: Path
) -> None:
    sink: Sink = start_sink()
    seed_database(engine, subscribers=6)
    settings = make_settings(sink, batch_size=2, render_processes=1)
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    # The sending process checked its templates; the render processes load theirs again,
    # from a folder that broke in between (an operator editing templates_dir mid-run).
    broken = tmp_path / "templates"
    shutil.copytree(templates_dir(MailSettings()), broken)
    settings = replace(settings, mail=replace(settings.mail, templates_dir=str(broken)))
    (broken / "digest.html").write_text("{% for x in %}")
    with pytest.raises(RenderError, match=r"digest\.html.*line 1"):
        asyncio.run(send_due(engine, settings, builder, clock=lambda: LATER, stop=asyncio.Event()))
    assert sink.handler.messages == []
    assert set(statuses(engine).values()) == {PENDING}


@pytest.mark.parametrize("offered", [True, False])
def test_the_text_part_is_8bit_only_for_a_relay_that_offers_8bitmime(
    engine: Engine, start_sink: Any, offered: bool
) -> None:
    sink: Sink = start_sink()
    sink.handler.eight_bit = offered
    seed_database(engine, subscribers=2)
    with engine.begin() as connection:  # every abstract, and so every text part, is non-ASCII
        connection.exec_driver_sql("UPDATE paper SET abstract = abstract || ' (Schrödinger)'")
    assert run_send(engine, make_settings(sink)).sent == 2
    for message in sink.handler.messages:
        text_part = email.message_from_bytes(message.data, policy=email.policy.default).get_body(("plain",))
        assert text_part is not None
        if offered:
            assert (text_part["Content-Transfer-Encoding"], message.mail_options) == ("8bit", ["BODY=8BITMIME"])
        else:
            assert (text_part["Content-Transfer-Encoding"], message.mail_options) == ("quoted-printable", [])
            assert message.data.isascii()


def test_never_twice_reads_only_the_history_inside_the_window(engine: Engine, start_sink: Any) -> None:
    check_never_twice_reads_only_the_window(engine, start_sink())


def check_never_twice_reads_only_the_window(engine: Engine, sink: Sink) -> None:
    """A long history (papers of earlier windows) is not read at send time; a paper of this
    window that was mailed before is still never mailed again."""
    emails = seed_database(engine, subscribers=2)
    with open_session(engine) as session:
        subscriber = get_subscriber(session, emails[0])
        old = [f"2301.{i:05d}" for i in range(300)]  # a year of digests before this one
        rows = [{"subscriber_id": subscriber.id, "paper_id": pid, "sent_at": DUE - timedelta(days=30)} for pid in old]
        rows.append({"subscriber_id": subscriber.id, "paper_id": "2611.00000", "sent_at": DUE - timedelta(days=30)})
        session.execute(insert(SentPaper), rows)
        candidates = {f"2611.{i:05d}" for i in range(40)}
        profile = load_profiles(session, [subscriber], sent_among=candidates)[0]
        assert profile.already_sent == {"2611.00000"}
        assert len(load_profiles(session, [subscriber])[0].already_sent) == 301
    assert run_send(engine, make_settings(sink)).sent == 2
    first = next(m for m in sink.handler.messages if m.recipients == [emails[0]])
    other = next(m for m in sink.handler.messages if m.recipients == [emails[1]])
    assert b"2611.00000" in other.data and b"2611.00000" not in first.data


def test_old_never_twice_records_are_forgotten_and_recent_ones_kept(engine: Engine) -> None:
    check_forgetting_old_records(engine)


def check_forgetting_old_records(engine: Engine) -> None:
    """Records of papers sent before the cut-off go, in chunks; the ones after it stay."""
    emails = seed_database(engine, subscribers=2)
    with open_session(engine) as session:
        ids = [get_subscriber(session, address).id for address in emails]
        rows = [
            {"subscriber_id": sid, "paper_id": f"2201.{i:05d}", "sent_at": DUE - timedelta(days=181 + i)}
            for sid in ids
            for i in range(7)
        ]
        rows += [
            {"subscriber_id": sid, "paper_id": f"2606.{i:05d}", "sent_at": DUE - timedelta(days=179)}
            for sid in ids
            for i in range(3)
        ]
        session.execute(insert(SentPaper), rows)
    cutoff = DUE - timedelta(days=180)
    assert forget_sent_papers(engine, before=cutoff, keep_going=lambda: False) == 0  # the daemon is stopping
    chunks = 0

    def keep_going() -> bool:  # asked before each chunk
        nonlocal chunks
        chunks += 1
        return True

    assert forget_sent_papers(engine, before=cutoff, chunk=4, keep_going=keep_going) == 14
    assert chunks == 4  # 4 + 4 + 4 + 2 rows, one transaction each
    with open_session(engine) as session:
        left = {tuple(row) for row in session.execute(select(SentPaper.subscriber_id, SentPaper.paper_id))}
    assert left == {(sid, f"2606.{i:05d}") for sid in ids for i in range(3)}
    assert forget_sent_papers(engine, before=cutoff) == 0


def test_records_that_share_a_time_are_forgotten_together_even_past_a_chunk(engine: Engine) -> None:
    check_forgetting_records_that_share_a_time(engine)


def check_forgetting_records_that_share_a_time(engine: Engine) -> None:
    """A chunk ends after the records of its last moment (a message's ~20 share one), however
    many there are; a record sent exactly at the cut-off stays."""
    emails = seed_database(engine, subscribers=2)
    cutoff = DUE - timedelta(days=180)
    with open_session(engine) as session:
        ids = [get_subscriber(session, address).id for address in emails]
        rows = [
            {"subscriber_id": sid, "paper_id": f"2201.{i:05d}", "sent_at": cutoff - timedelta(days=10)}
            for sid in ids
            for i in range(5)
        ]
        rows += [{"subscriber_id": sid, "paper_id": "2202.00000", "sent_at": cutoff - timedelta(days=5)} for sid in ids]
        rows += [{"subscriber_id": sid, "paper_id": "2205.00000", "sent_at": cutoff} for sid in ids]
        session.execute(insert(SentPaper), rows)
    chunks = 0

    def keep_going() -> bool:
        nonlocal chunks
        chunks += 1
        return True

    assert forget_sent_papers(engine, before=cutoff, chunk=4, keep_going=keep_going) == 12
    assert chunks == 2  # the 10 of the oldest moment, then the last 2
    with open_session(engine) as session:
        left = {tuple(row) for row in session.execute(select(SentPaper.subscriber_id, SentPaper.paper_id))}
    assert left == {(sid, "2205.00000") for sid in ids}
