"""A private Postfix instance on loopback for the bounce tests (Debian's postfix package).

One instance per test module (`postfix -c DIR`, its own queue and log under DIR, nothing
in /etc/postfix used or changed). It listens on two unprivileged ports:

- `relay_port`: digestd's relay. It accepts every recipient (250), then delivers:
  `*@local.example.net` to local(8), which has no such user and bounces with 5.1.1 ("unknown
  user"); `*@remote.example.net` over SMTP to the second port;
- `remote_port`: "the next server", with a `check_recipient_access` map refusing
  `rejected@remote.example.net` with `550 5.1.1` (and everyone else), so the relay bounces it too.

DSNs go to the envelope sender, `bounces+<token>@`, delivered by virtual(8) into a
Maildir per domain: `bounces.example.net` into `maildir` (and `reader@`'s digests into
`vmail/reader`), `pipe.example.net` into `vmail/pipe`; `piped.example.net` goes to a
`pipe` transport running `digestd bounces read` (the README's set-up) as user nobody, when
`pipe_command` is given: Postfix refuses to run it as root, so the test finds a Python that
nobody can run (`python_for_nobody`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
DEBIAN_MASTER_CF = Path("/etc/postfix/master.cf")


def postfix_missing() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if not Path(POSTFIX).exists() or not DEBIAN_MASTER_CF.exists():
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master process starts as root)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Postfix:
    directory: Path
    relay_port: int
    remote_port: int
    maildir: Path

    @property
    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.directory / "etc"), "stop"], capture_output=True, check=False)


def _master_cf(relay_port: int, remote_port: int, access_map: Path, pipe_command: str) -> str:
    """Debian's master.cf without chroot (the private queue has no chroot files), the
    public smtp listener replaced by the two loopback ones, and the digestd pipe."""
    lines = []
    for line in DEBIAN_MASTER_CF.read_text().splitlines():
        fields = line.split()
        if line.startswith(("#", " ", "\t")) or len(fields) < 8:
            lines.append(line)
            continue
        if fields[:2] == ["smtp", "inet"]:
            continue
        fields[4] = "n"  # chroot
        lines.append("  ".join(fields))
    lines += [
        f"127.0.0.1:{relay_port} inet n - n - - smtpd",
        f"127.0.0.1:{remote_port} inet n - n - - smtpd",
        "  -o myhostname=mx.remote.example.net",
        f"  -o smtpd_recipient_restrictions=check_recipient_access,texthash:{access_map},reject",
    ]
    if pipe_command:
        lines += ["digestd unix - n n - - pipe", f"  flags=Rq user=nobody argv={pipe_command}"]
    return "\n".join(lines) + "\n"


def start_postfix(directory: Path, *, pipe_command: str = "") -> Postfix:
    """Configure and start the instance (stop it with `Postfix.stop`); `pipe_command` is the
    argv of the pipe transport for piped.example.net."""
    etc, queue, data, maildir_base = (directory / name for name in ("etc", "queue", "data", "vmail"))
    for folder in (etc, queue, data, maildir_base):
        folder.mkdir(parents=True, exist_ok=True)
    nobody = pwd.getpwnam("nobody")
    os.chown(maildir_base, nobody.pw_uid, nobody.pw_gid)  # virtual(8) writes as nobody
    relay_port, remote_port = free_port(), free_port()
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(queue),
        "data_directory": str(data),
        "maillog_file": str(directory / "maillog"),
        "maillog_file_prefixes": str(directory),
        "myhostname": "relay.digestd.test",
        "mydomain": "digestd.test",
        "myorigin": "digestd.test",
        "mydestination": "local.example.net",
        "mynetworks": "127.0.0.0/8",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "smtpd_recipient_restrictions": "",
        "smtpd_reject_unlisted_recipient": "no",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "recipient_delimiter": "+",
        "relay_domains": "remote.example.net, piped.example.net",
        "transport_maps": f"inline:{{remote.example.net=smtp:[127.0.0.1]:{remote_port}, piped.example.net=digestd:}}",
        "digestd_destination_recipient_limit": "1",
        "virtual_mailbox_domains": "bounces.example.net, pipe.example.net",
        "virtual_mailbox_base": str(maildir_base),
        # bounces and mailed unsubscribes into one Maildir; a reader's digests into another
        "virtual_mailbox_maps": "inline:{bounces@bounces.example.net=bounces/, "
        "unsubscribe@bounces.example.net=bounces/, reader@bounces.example.net=reader/, bounces@pipe.example.net=pipe/}",
        "virtual_uid_maps": f"static:{nobody.pw_uid}",
        "virtual_gid_maps": f"static:{nobody.pw_gid}",
        "virtual_minimum_uid": "1",
        "smtp_dns_support_level": "disabled",
        "smtp_tls_security_level": "none",
        "smtpd_tls_security_level": "none",
        "delay_warning_time": "0",
        "notify_classes": "",
        "biff": "no",
        "mailbox_size_limit": "0",
        "maximal_queue_lifetime": "1h",
        "bounce_queue_lifetime": "1h",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
    }
    (etc / "main.cf").write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
    access_map = etc / "remote_access"
    access_map.write_text("rejected@remote.example.net 550 5.1.1 <rejected@remote.example.net>: mailbox gone\n")
    (etc / "master.cf").write_text(_master_cf(relay_port, remote_port, access_map, pipe_command))
    subprocess.run([POSTFIX, "-c", str(etc), "set-permissions"], capture_output=True, check=False)
    started = subprocess.run([POSTFIX, "-c", str(etc), "start"], capture_output=True, text=True, check=False)
    instance = Postfix(directory, relay_port, remote_port, maildir_base / "bounces")
    if started.returncode != 0:
        instance.stop()
        raise RuntimeError(f"postfix did not start: {started.stderr}\n{instance.log}")
    return instance


def python_for_nobody() -> list[str] | None:
    """A command that runs this digestd's Python as user nobody (the pipe's user): this
    interpreter, or, when nobody cannot reach it (a Python under /root), the system's
    python3 of the same version with this environment's packages on PYTHONPATH."""
    root = Path(__file__).resolve().parents[2]
    site = sysconfig.get_paths()["purelib"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [[sys.executable], ["/usr/bin/env", f"PYTHONPATH={site}:{root}", f"/usr/bin/{version}"]]
    for command in candidates:
        probe = subprocess.run(
            ["runuser", "-u", "nobody", "--", *command, "-c", "import digestd, sqlalchemy"],
            capture_output=True,
            check=False,
            cwd="/",
        )
        if probe.returncode == 0:
            return command
    return None
