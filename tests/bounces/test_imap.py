"""The daemon's IMAP path against a real Dovecot on loopback (Debian's dovecot-imapd,
Maildir backend, IMAPS with a test CA): unseen messages are handled and flagged \\Seen.
Skipped when Dovecot is absent, except under CI=true (`.ci/run` installs it)."""

from __future__ import annotations

import asyncio
import imaplib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from dovecot import PASSWORD, USER, Dovecot, dovecot_missing, start_dovecot
from postfix import free_port
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from test_events import NOW, SETTINGS, add_reader, sample, state

from digestd.bounces.mailboxes import poll_imap
from digestd.config import BounceSettings, Settings
from digestd.daemon.scheduler import DaemonJobs, build_scheduler
from digestd.errors import ConfigError, SourceError
from digestd.mail.render import make_email_builder
from digestd.records import ACTIVE, SUPPRESSED
from digestd.store import make_engine

IN_CI = os.environ.get("CI") == "true"  # as tests/conftest.py: CI needs Postfix and Dovecot


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    problem = dovecot_missing()
    if problem:
        if IN_CI:
            pytest.fail(f"{problem}; CI must have it (.ci/run installs it)")
        pytest.skip(problem)
    folder = Path(tempfile.mkdtemp(prefix="digestd-dovecot-"))
    folder.chmod(0o755)  # Dovecot's processes (users dovecot, nobody) reach their files
    instance = start_dovecot(folder)
    try:
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(folder, ignore_errors=True)


def imap_settings(dovecot: Dovecot, **changes: str) -> Settings:
    bounces = BounceSettings(
        imap_url=f"imaps://{USER}@127.0.0.1:{dovecot.port}/INBOX",
        imap_password=PASSWORD,
        ca_file=str(dovecot.ca_file),
    )
    return replace(SETTINGS, bounces=replace(bounces, **changes))


def unseen(dovecot: Dovecot) -> int:
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", dovecot.port, ssl_context=context) as client:
        client.login(USER, PASSWORD)
        client.select("INBOX")
        return len(client.uid("SEARCH", "UNSEEN")[1][0].split())


def test_the_daemon_reads_unseen_messages_and_flags_them_seen(dovecot: Dovecot, engine: Engine) -> None:
    ada, did, key = add_reader(engine)
    bob, bob_did, bob_key = add_reader(engine, "bob@example.org")
    dovecot.deliver("1.eml", sample("arf-complaint.eml", did, key))
    dovecot.deliver("2.eml", sample("auto-reply.eml", bob_did, bob_key))
    settings = imap_settings(dovecot)
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    jobs = DaemonJobs(engine, settings, builder, asyncio.Event(), clock=lambda: NOW)
    assert build_scheduler(jobs).get_job("bounces") is not None  # the daemon polls on its own schedule
    assert build_scheduler(replace(jobs, settings=SETTINGS)).get_job("bounces") is None  # no imap_url: no polling
    asyncio.run(jobs.poll_bounces())
    assert state(engine, ada) == (SUPPRESSED, True, [("complaint", "")])
    assert state(engine, bob) == (ACTIVE, False, [])  # the auto-reply changed nothing
    assert unseen(dovecot) == 0
    assert poll_imap(engine, settings, clock=lambda: NOW).summary() == "0 message(s)"  # nothing twice


def test_a_message_stays_unseen_while_the_database_is_down(dovecot: Dovecot, engine: Engine) -> None:
    ada, did, key = add_reader(engine)
    dovecot.deliver("3.eml", sample("soft-dsn.eml", did, key))
    down = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")  # nothing listens there
    with pytest.raises(OperationalError):
        poll_imap(down, imap_settings(dovecot), clock=lambda: NOW)
    down.dispose()
    assert unseen(dovecot) == 1
    assert poll_imap(engine, imap_settings(dovecot), clock=lambda: NOW).summary() == "1 message(s): 1 soft"
    assert state(engine, ada)[2] == [("soft", "4.2.2")]


def test_tls_is_verified_and_the_password_is_needed(dovecot: Dovecot, engine: Engine) -> None:
    with pytest.raises(SourceError, match="certificate verify failed"):
        poll_imap(engine, imap_settings(dovecot, ca_file=""), clock=lambda: NOW)
    with pytest.raises(SourceError, match="IMAP"):
        poll_imap(engine, imap_settings(dovecot, imap_password="wrong"), clock=lambda: NOW)
    with pytest.raises(ConfigError, match="DIGESTD_BOUNCES_IMAP_PASSWORD"):
        poll_imap(engine, imap_settings(dovecot, imap_password=""), clock=lambda: NOW)
