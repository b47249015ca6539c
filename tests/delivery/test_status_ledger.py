"""`digestd status` shows the ledger and the recent failures with their reasons."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from seeds import make_settings, seed_database
from sinks import Sink
from sqlalchemy import Engine
from test_send import run_send

from digestd.cli import cli


def test_status_shows_the_ledger_and_why_deliveries_failed(engine: Engine, start_sink: Any) -> None:
    sink: Sink = start_sink()
    emails = seed_database(engine, subscribers=4)
    sink.handler.rules[("RCPT", emails[0])] = ["550 5.1.1 no such user"]
    sink.handler.rules[("RCPT", emails[1])] = ["451 4.3.0 greylisted"]
    sink.handler.rules[("DATA", emails[2])] = ["drop"]
    run_send(engine, make_settings(sink, connections=1))
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--database", url, "status"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "ledger:      1 sent, 0 pending, 1 retrying, 1 failed, 1 unknown, 0 skipped" in result.output
    assert (
        f"{emails[0]} (2026-11-30): perm_failed after 1 attempt(s): 550 5.1.1 no such user (at RCPT)" in result.output
    )
    assert "451 4.3.0 greylisted" in result.output and "next try 2026-11-30 08:06" in result.output
    assert "--resend-unknown" in result.output
    report = json.loads(CliRunner().invoke(cli, ["--database", url, "status", "--json"]).output)
    assert report["deliveries"] == {"sent": 1, "pending": 0, "retrying": 1, "failed": 1, "unknown": 1, "skipped": 0}
    assert {f["status"] for f in report["recent_failures"]} == {"perm_failed", "temp_failed", "unknown"}
