"""Bounces through a real Postfix (Debian's package) on loopback, as the relay: it accepts
the digests (250), then bounces one to a local user that does not exist and one that the
next server refuses at RCPT; its real DSNs come back to the VERP address, into a Maildir
that `digestd bounces scan` reads, to a pipe transport that runs `digestd bounces read`
(Postfix keeps a DSN while that exits 75), and, on SQLite, to `bounces read` on stdin.

Skipped when Postfix is absent, except under CI=true (`.ci/run` installs it). One Postfix
instance serves the whole module; each test has its own database and addresses.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from postfix import Postfix, free_port, postfix_missing, python_for_nobody, start_postfix
from processes import wait_until
from sqlalchemy import Engine
from sqlmodel import select

from digestd.cli import cli
from digestd.config import DatabaseSettings, DigestSettings, MailSettings, Settings, SmtpSettings
from digestd.delivery.send import send_due
from digestd.mail.render import make_email_builder
from digestd.models import Bounce, Subscriber, Suppression
from digestd.records import ACTIVE, SUPPRESSED, UNSUBSCRIBED, PaperRecord
from digestd.store import make_engine, migrate, open_session, save_papers
from digestd.subscribers import SubscriberInput, add_subscriber, email_hash

SECRET = "postfix-test-secret-key-32-chars-long"
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DUE_AND_A_MINUTE = datetime(2026, 11, 30, 8, 1, tzinfo=UTC)
GONE, REJECTED, READER = "gone@local.example.net", "rejected@remote.example.net", "reader@bounces.example.net"

IN_CI = os.environ.get("CI") == "true"  # as tests/conftest.py: CI needs Postfix and Dovecot


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """Outside pytest's 0700 temp folders: Postfix's daemons (users postfix, nobody) must
    reach their files."""
    folder = Path(tempfile.mkdtemp(prefix="digestd-postfix-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pipe_config(shared_dir: Path) -> Path:
    """The config of the pipe transport's `digestd bounces read` (written by the test)."""
    return shared_dir / "pipe.toml"


@pytest.fixture(scope="module")
def postfix(shared_dir: Path, pipe_config: Path) -> Iterator[Postfix]:
    problem = postfix_missing()
    if problem:
        if IN_CI:
            pytest.fail(f"{problem}; CI must have it (.ci/run installs it)")
        pytest.skip(problem)
    python = python_for_nobody()
    digestd = ["-m", "digestd", "--config", str(pipe_config), "bounces", "read", "--recipient", "${recipient}"]
    command = " ".join(["/usr/bin/env", f"DIGESTD_SECRET_KEY={SECRET}", *python, *digestd]) if python else ""
    instance = start_postfix(shared_dir / "postfix", pipe_command=command)
    try:
        yield instance
    finally:
        instance.stop()


def settings_for(postfix: Postfix, url: str, bounce_domain: str) -> Settings:
    mail = MailSettings(
        from_="Paper Digest <digest@example.org>",
        base_url="https://digest.example.org",
        bounce_address=f"bounces@{bounce_domain}",
    )
    smtp = SmtpSettings(host="127.0.0.1", port=postfix.relay_port, security="none", timeout_seconds=30)
    return Settings(database=DatabaseSettings(url=url), mail=mail, smtp=smtp, secret_key=SECRET)


def seed(engine: Engine, emails: list[str]) -> None:
    topics = ["graph neural networks", "diffusion models", "quantum error correction", "dark matter halos"]
    papers = [
        PaperRecord(
            id=f"2611.{i:05d}",
            title=f"On {topics[i % 4]}: study {i}",
            abstract=f"We study {topics[i % 4]} in setting {i}. " * 8,
            authors=("Ada Lovelace",),
            categories=("cs.LG",),
            published=(T0 + timedelta(days=1)).date(),
        )
        for i in range(20)
    ]
    with open_session(engine) as session:
        save_papers(session, papers, now=T0 + timedelta(days=1))
        for address in emails:
            given = SubscriberInput(email=address, keywords="graph neural networks")
            add_subscriber(session, given, defaults=DigestSettings(), now=T0)


def send(engine: Engine, settings: Settings) -> None:
    builder = make_email_builder(settings.mail, secret_key=settings.secret_key)
    report = asyncio.run(send_due(engine, settings, builder, clock=lambda: DUE_AND_A_MINUTE, stop=asyncio.Event()))
    assert report.sent == report.planned, report.summary()  # the relay said 250 to every one


def states(engine: Engine) -> dict[str, str]:
    with open_session(engine) as session:
        return {s.email: s.status for s in session.scalars(select(Subscriber))}


def messages(folder: Path) -> list[Path]:
    new = folder / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def scan(url: str, maildir: Path) -> Result:
    """`digestd bounces scan`, as cron would run it."""
    return CliRunner().invoke(
        cli,
        ["--database", url, "bounces", "scan", "--maildir", str(maildir)],
        catch_exceptions=False,
        env={"DIGESTD_SECRET_KEY": SECRET, "DIGESTD_MAIL_BOUNCE_ADDRESS": "bounces@bounces.example.net"},
    )


def status_output(url: str) -> str:
    result = CliRunner().invoke(cli, ["--database", url, "status"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_postfix_dsns_in_a_maildir_suppress_the_addresses_and_status_says_why(postfix: Postfix, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digestd.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    seed(engine, [GONE, REJECTED, READER])
    settings = settings_for(postfix, url, "bounces.example.net")
    send(engine, settings)

    # The reader's digest arrived, its envelope sender naming its delivery row.
    reader = postfix.directory / "vmail" / "reader"
    delivered = wait_until(lambda: messages(reader), "the reader's digest in its Maildir", progress=lambda: postfix.log)
    digest = email.message_from_bytes(delivered[0].read_bytes(), policy=email.policy.default)
    assert re.fullmatch(r"<bounces\+\d+-[a-z2-7]{16}@bounces\.example\.net>", str(digest["Return-Path"]))
    assert re.search(
        r"mailto:unsubscribe\+\d+-[a-z2-7]{16}@bounces\.example\.net\?subject=unsubscribe",
        str(digest["List-Unsubscribe"]),
    )
    assert digest["From"] == "Paper Digest <digest@example.org>"  # unchanged

    dsns = wait_until(
        lambda: len(found := messages(postfix.maildir)) >= 2 and found,
        "Postfix's two DSNs in the Maildir",
        progress=lambda: postfix.log[-3000:],
    )
    assert states(engine) == {GONE: ACTIVE, REJECTED: ACTIVE, READER: ACTIVE}  # nothing until read

    scanned = scan(url, postfix.maildir)
    assert scanned.exit_code == 0, scanned.output
    assert "2 hard" in scanned.output
    assert not any(path.exists() for path in dsns)  # moved out of new/
    assert len(list((postfix.maildir / "cur").iterdir())) >= 2
    assert states(engine) == {GONE: SUPPRESSED, REJECTED: SUPPRESSED, READER: ACTIVE}
    with open_session(engine) as session:
        events = {e.subscriber_id: e for e in session.scalars(select(Bounce))}
        assert {e.status for e in events.values()} == {"5.1.1"}
        assert session.get(Suppression, email_hash(GONE)) is not None

    # The reader presses "Unsubscribe" in a mail client: a message to the List-Unsubscribe mailto.
    address = re.search(r"mailto:([^?>]+)", str(digest["List-Unsubscribe"]))[1]  # type: ignore[index]
    with smtplib.SMTP("127.0.0.1", postfix.relay_port) as client:
        request = f"From: {READER}\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"
        client.sendmail(READER, [address], request)
    wait_until(lambda: messages(postfix.maildir), "the mailed unsubscribe in the Maildir", progress=lambda: postfix.log)
    assert "1 unsubscribe" in scan(url, postfix.maildir).output
    assert states(engine) == {GONE: SUPPRESSED, REJECTED: SUPPRESSED, READER: UNSUBSCRIBED}

    shown = status_output(url)
    assert "bounces:     2 hard, 1 unsubscribe" in shown
    assert re.search(
        r"gone@local\.example\.net hard 5\.1\.1 via maildir, suppressed \(hard bounce\): unknown user", shown
    )
    assert re.search(r"rejected@remote\.example\.net hard 5\.1\.1 via maildir, .*mailbox gone", shown)
    engine.dispose()


def read_piped(url: str, message: Path) -> Result:
    """`digestd bounces read` with the message on stdin and the envelope recipient as an
    argument, as a pipe transport runs it (in this process: the test below has Postfix run it)."""
    recipient = str(email.message_from_bytes(message.read_bytes())["Delivered-To"])
    return CliRunner().invoke(
        cli,
        ["--database", url, "bounces", "read", "--recipient", recipient],
        input=message.read_bytes(),
        env={"DIGESTD_SECRET_KEY": SECRET, "DIGESTD_MAIL_BOUNCE_ADDRESS": "bounces@pipe.example.net"},
        catch_exceptions=False,
    )


def test_pipe_mode_reads_the_same_dsns_and_asks_the_mta_to_retry_while_the_database_is_down(
    postfix: Postfix, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'digestd.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    seed(engine, [GONE, REJECTED])
    send(engine, settings_for(postfix, url, "pipe.example.net"))
    folder = postfix.directory / "vmail" / "pipe"
    dsns = wait_until(lambda: len(found := messages(folder)) >= 2 and found, "two DSNs", progress=lambda: postfix.log)

    unreachable = read_piped(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", dsns[0])
    assert unreachable.exit_code == 75, unreachable.output  # EX_TEMPFAIL: the MTA keeps it and retries
    assert "the database cannot be reached" in unreachable.stderr
    assert "stays with the mail server" in unreachable.stderr
    assert states(engine) == {GONE: ACTIVE, REJECTED: ACTIVE}

    for dsn in dsns:
        piped = read_piped(url, dsn)
        assert piped.exit_code == 0, piped.stderr
        assert piped.stdout.startswith("hard: suppressed (hard bounce)")
    assert states(engine) == {GONE: SUPPRESSED, REJECTED: SUPPRESSED}
    with open_session(engine) as session:
        assert {(e.kind, e.status, e.source) for e in session.scalars(select(Bounce))} == {("hard", "5.1.1", "pipe")}
    assert re.search(r"gone@local\.example\.net hard 5\.1\.1 via pipe, suppressed", status_output(url))
    engine.dispose()


@pytest.mark.postgres
def test_postfix_pipes_each_dsn_to_bounces_read_and_keeps_it_while_the_database_is_down(
    postfix: Postfix, pipe_config: Path, postgres_url: str
) -> None:
    """The README's pipe transport, run by Postfix itself (as user nobody, so the database
    is PostgreSQL): exit 75 makes Postfix keep the DSN and try again."""
    if "digestd unix" not in (postfix.directory / "etc" / "master.cf").read_text():
        if IN_CI:
            pytest.fail("no Python that user nobody can run for the pipe transport")
        pytest.skip("no Python that user nobody can run for the pipe transport (this one is under /root)")
    engine = make_engine(postgres_url)
    migrate(engine)
    seed(engine, [GONE, REJECTED])

    def configure(url: str) -> None:
        pipe_config.write_text(f'[database]\nurl = "{url}"\n\n[mail]\nbounce_address = "bounces@piped.example.net"\n')
        pipe_config.chmod(0o644)

    configure(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/down")  # nothing listens there
    send(engine, settings_for(postfix, postgres_url, "piped.example.net"))
    deferred = re.compile(r"relay=digestd,.*status=deferred \(temporary failure.*the database cannot be reached")
    wait_until(
        lambda: len(deferred.findall(postfix.log)) >= 2,
        "both DSNs deferred by the pipe",
        progress=lambda: postfix.log[-3000:],
    )
    assert states(engine) == {GONE: ACTIVE, REJECTED: ACTIVE}

    configure(postgres_url)  # the database is back: Postfix's next try gets through
    wait_until(
        lambda: states(engine) == {GONE: SUPPRESSED, REJECTED: SUPPRESSED},
        "both subscribers suppressed through the pipe",
        progress=lambda: f"{states(engine)}\n{postfix.log[-3000:]}",
    )
    delivered = re.compile(r"relay=digestd,.*status=sent \(delivered via digestd service")
    wait_until(
        lambda: len(delivered.findall(postfix.log)) >= 2, "both DSNs delivered (exit 0)", progress=lambda: postfix.log
    )
    with open_session(engine) as session:
        assert {(e.kind, e.status, e.source) for e in session.scalars(select(Bounce))} == {("hard", "5.1.1", "pipe")}
    engine.dispose()
