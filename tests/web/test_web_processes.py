"""`digestd web` and `digestd run` as real processes: each runs the sign-up sender, so a
sign-up on its pages is mailed (through a real SMTP sink) after the answer, and SIGTERM
stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web_support import RecordingHandler, free_port, start_smtp_sink

from digestd.config import SmtpSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink() -> Iterator[tuple[RecordingHandler, SmtpSettings]]:
    controller, handler, smtp = start_smtp_sink()
    yield handler, smtp
    controller.stop()


def digestd(config: Path, *args: str, wait: bool = True) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGESTD_CONFIG": str(config), "DIGESTD_SECRET_KEY": "k" * 32, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "digestd", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if wait:
        process.communicate(timeout=60)
        assert process.returncode == 0
    return process


def wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/static/style.css", timeout=2)
            return
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the web pages did not come up"
            time.sleep(0.1)


@pytest.mark.parametrize("command", [["web"], ["run", "--no-deliver"]], ids=["digestd web", "digestd run"])
def test_a_sign_up_on_the_served_pages_is_mailed(
    tmp_path: Path, sink: tuple[RecordingHandler, SmtpSettings], command: list[str]
) -> None:
    handler, smtp = sink
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "digestd.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "db.sqlite3"}"\n[mail]\nfrom = "Digest <d@example.org>"\n'
        f'base_url = "{base}"\n[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
        f'timeout_seconds = 10\n[web]\nbind = "127.0.0.1:{port}"\n'
    )
    digestd(config, "init")
    process = digestd(config, *command, wait=False)
    try:
        wait_until_up(base, process)
        with httpx.Client(base_url=base) as browser:
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', browser.get("/subscribe").text).group(1)  # type: ignore[union-attr]
            data = {"csrf": csrf, "email": "ada@example.org", "keywords": "graphs", "frequency": "weekly",
                    "day": "mon", "time": "08:00", "timezone": "UTC"}  # fmt: skip
            assert browser.post("/subscribe", data=data).status_code == 200
        (message,) = handler.wait_for(1, timeout=60)
        assert message["To"] == "ada@example.org" and f"{base}/confirm/" in message.get_content()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
