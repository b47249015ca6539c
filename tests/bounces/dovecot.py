"""A private Dovecot IMAP server on loopback for the IMAP bounce tests (Debian's
dovecot-imapd): its own config, state and log under one folder (`dovecot -c`), nothing in
/etc/dovecot used or changed. One user whose mailbox is a Maildir; IMAPS on an
unprivileged port with a certificate from a test CA (trustme)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import trustme
from postfix import free_port
from processes import wait_until

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "imap-test-password"


def dovecot_missing() -> str | None:
    """Why a private Dovecot cannot run here, or None."""
    if not Path(DOVECOT).exists() or not Path("/usr/lib/dovecot/imap").exists():
        return "Dovecot is not installed (apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "a private Dovecot instance needs root (its master process starts as root)"
    return None


@dataclass
class Dovecot:
    directory: Path
    port: int
    ca_file: Path
    maildir: Path  # the user's INBOX

    @property
    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def deliver(self, name: str, data: bytes) -> Path:
        """Put a message in the INBOX as a delivery agent would (tmp/, then new/)."""
        nobody = pwd.getpwnam("nobody")
        temporary = self.maildir / "tmp" / name
        temporary.write_bytes(data)
        os.chown(temporary, nobody.pw_uid, nobody.pw_gid)
        return temporary.rename(self.maildir / "new" / name)

    def stop(self) -> None:
        """SIGTERM to its master process, then wait until it has gone (with its children)."""
        pid_file = self.directory / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), "Dovecot's master process gone")


def start_dovecot(directory: Path) -> Dovecot:
    run, mail = directory / "run", directory / "mail"
    maildir = mail / USER / "Maildir"
    for folder in (run, maildir / "new", maildir / "cur", maildir / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    nobody = pwd.getpwnam("nobody")
    for folder in (mail, mail / USER, maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    (directory / "server.pem").chmod(0o600)
    (directory / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    port = free_port()
    config = f"""
protocols = imap
listen = 127.0.0.1
base_dir = {run}
state_dir = {directory / "state"}
log_path = {directory / "dovecot.log"}
ssl = required
ssl_cert = <{directory / "server.pem"}
ssl_key = <{directory / "server.pem"}
mail_location = maildir:{mail}/%u/Maildir
mail_uid = {nobody.pw_uid}
mail_gid = {nobody.pw_gid}
first_valid_uid = 1
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = {directory / "users"}
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
    (directory / "state").mkdir(exist_ok=True)
    conf = directory / "dovecot.conf"
    conf.write_text(config)
    output = directory / "start.log"  # not a pipe: the daemon keeps its descriptors open
    with output.open("wb") as sink:
        started = subprocess.run([DOVECOT, "-c", str(conf)], stdout=sink, stderr=sink, check=False)
    instance = Dovecot(directory, port, directory / "ca.pem", maildir)
    if started.returncode != 0:
        raise RuntimeError(f"dovecot did not start: {output.read_text()}\n{instance.log}")
    return instance
