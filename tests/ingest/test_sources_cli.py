"""`digestd ingest [--source NAME]` and `digestd status [--json]` over configured sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from feed_server import FeedServer, Reply, feed_server, own_feed, real_feed


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as running:
        yield running


@pytest.fixture
def config(server: FeedServer, tmp_path: Path) -> str:
    lg = server.add("/rss/cs.LG", Reply(own_feed("arxiv_rss2_cs.LG.xml")))
    hf = server.add("/api/daily_papers", Reply(real_feed("hf_daily_papers_2024-05-27.json")))
    broken = server.add("/broken", Reply(own_feed("truncated.xml")))
    path = tmp_path / "digestd.toml"
    path.write_text(
        f"""
[ingest]
contact = "ops@example.org"

[[sources]]
name = "arxiv-cs-lg"
kind = "arxiv-rss"
url = "{lg}"
include_replacements = true

[[sources]]
name = "hf"
kind = "hf-daily"
url = "{hf}"

[[sources]]
name = "broken"
kind = "rss"
url = "{broken}"
"""
    )
    return str(path)


def test_ingest_runs_every_source_prints_progress_and_summaries(run, config: str, server: FeedServer) -> None:  # type: ignore[no-untyped-def]
    result = run("--config", config, "ingest")
    assert result.exit_code == 1
    assert "arxiv-cs-lg (arxiv-rss): fetching ..." in result.stderr
    assert "arxiv-cs-lg: 4 papers read, 4 new, 0 updated, 0 unchanged" in result.stdout
    assert "hf: 26 papers read, 13 new, 0 updated, 13 unchanged" in result.stdout
    assert "broken: FAILED: not a well-formed feed: no element found at line 18" in result.stdout
    assert "error: 1 of 3 source(s) failed: broken" in result.stderr
    assert "mailto:ops@example.org" in server.hits("/rss/cs.LG")[0].headers["user-agent"]

    status = run("--config", config, "status")
    assert status.exit_code == 0
    assert "papers:      17" in status.stdout
    assert "arxiv-cs-lg (arxiv-rss): last run " in status.stdout and "ok, 4 read, 4 new, 0 updated" in status.stdout
    assert "broken (rss): last run" in status.stdout and "FAILED (1 in a row, last success never)" in status.stdout
    assert "(error): not a well-formed feed: no element found at line 18, column 0" in status.stdout

    report = json.loads(run("--config", config, "status", "--json").stdout)
    assert report["papers"]["total"] == 17 and report["papers"]["per_source"] == {"arxiv-cs-lg": 4, "hf": 13}
    sources = {source["name"]: source for source in report["sources"]}
    assert sources["hf"]["last_new"] == 13 and sources["hf"]["last_error"] is None
    assert sources["broken"]["consecutive_failures"] == 1 and sources["broken"]["last_error_at"]
    assert "no element found" in sources["broken"]["last_error"]


def test_ingest_one_source_and_an_unknown_name(run, config: str, server: FeedServer) -> None:  # type: ignore[no-untyped-def]
    one = run("--config", config, "ingest", "--source", "hf")
    assert one.exit_code == 0 and "hf: 26 papers read, 13 new" in one.stdout
    assert server.hits("/rss/cs.LG") == [] and server.hits("/broken") == []
    unknown = run("--config", config, "ingest", "--source", "nope")
    assert unknown.exit_code == 2
    assert unknown.stderr.splitlines()[0] == "error: unknown source 'nope'; known sources: arxiv-cs-lg, hf, broken"


def test_a_source_backing_off_is_skipped_unless_forced(run, config: str, server: FeedServer) -> None:  # type: ignore[no-untyped-def]
    run("--config", config, "ingest", "--source", "broken")
    again = run("--config", config, "ingest", "--source", "broken")
    assert "broken: not run, backing off after failures until" in again.stdout and len(server.hits("/broken")) == 1
    forced = run("--config", config, "ingest", "--source", "broken", "--force")
    assert "broken: FAILED" in forced.stdout and len(server.hits("/broken")) == 2


def test_file_import_still_works_beside_sources(run, config: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "papers.jsonl"
    path.write_text(json.dumps({"id": "2401.00001", "title": "T", "abstract": "A", "published": "2024-01-02"}) + "\n")
    result = run("--config", config, "ingest", "--file", str(path))
    assert result.exit_code == 0 and "1 papers read, 1 new" in result.stdout
