import email
import json
from email import policy
from pathlib import Path

from sqlalchemy import Engine

from digestd.demo import SAMPLE_PAPERS

SUBSCRIBERS = [
    ["ada@example.org", "--keywords", "graph neural networks:2, diffusion models", "--exclude", "survey"],
    ["emmy@example.org", "--keywords", "quantum error correction, surface code", "--seed", "2611.20003"],
]


def setup(run) -> None:  # type: ignore[no-untyped-def]
    assert run("ingest", "--file", str(SAMPLE_PAPERS)).exit_code == 0
    for args in SUBSCRIBERS:
        assert run("subscribers", "add", *args).exit_code == 0


def test_preview_json_lists_papers_in_rank_order_with_reasons(run, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    setup(run)
    result = run("preview", "ada@example.org", "--since", "2026-11-01", "--until", "2026-11-30", "--format", "json")
    assert result.exit_code == 0, result.output
    digest = json.loads(result.output)
    assert digest["subscriber"] == "ada@example.org"
    papers = digest["papers"]
    assert papers, "the sample has papers on graph neural networks"
    assert [p["rank"] for p in papers] == list(range(1, len(papers) + 1))
    assert [p["score"] for p in papers] == sorted((p["score"] for p in papers), reverse=True)
    assert all(p["reasons"] and p["section"] for p in papers)
    assert all("survey" not in p["title"].lower() for p in papers), "excluded words never appear"
    assert {section["label"] for section in digest["sections"]} == {p["section"] for p in papers}
    # A preview never records anything as sent.
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM sent_paper").scalar() == 0
        assert connection.exec_driver_sql("SELECT count(*) FROM delivery").scalar() == 0


def test_preview_since_until_are_inclusive_published_dates(run) -> None:  # type: ignore[no-untyped-def]
    setup(run)
    result = run("preview", "emmy@example.org", "--since", "2026-11-17", "--until", "2026-11-17", "--format", "json")
    ids = {p["id"] for p in json.loads(result.output)["papers"]}
    assert ids and ids <= {"2611.10002", "2611.10003", "2611.20002", "2611.30002", "2611.40001"}
    assert "2611.20002" in ids  # published that day, about the surface code
    empty = run("preview", "emmy@example.org", "--since", "2020-01-01", "--until", "2020-01-31", "--format", "json")
    assert json.loads(empty.stdout)["papers"] == []
    assert "note: none of the 29 stored papers (published 2026-11-" in empty.stderr
    assert "was published from 2020-01-01 to 2020-01-31" in empty.stderr


def test_preview_and_dry_run_say_when_no_stored_paper_is_new_and_how_to_see_them(run, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    setup(run)
    with engine.begin() as connection:  # an import of old papers: none is new for the next digest
        connection.exec_driver_sql("UPDATE paper SET published = '2025-07-02'")
    preview = run("preview", "ada@example.org")
    assert preview.exit_code == 0 and "0 new papers" in preview.stdout
    note = "none of the 29 stored papers (published 2025-07-02 to 2025-07-02) reached digestd in that period"
    assert note in preview.stderr
    command = "digestd preview ada@example.org --since 2025-06-26 --until 2025-07-02"
    assert f"hint: to see a digest of stored papers, name their published dates: {command}" in preview.stderr
    shown = run(*command.split()[1:], "--format", "json")
    assert json.loads(shown.stdout)["papers"] and not shown.stderr
    nothing_due = run("send", "--dry-run")
    assert "no digest is due now; `digestd send --dry-run EMAIL` builds one" in nothing_due.stdout
    dry_run = run("send", "--dry-run", "ada@example.org")
    assert "ada@example.org: nothing matched; would be skipped" in dry_run.stdout
    assert note in dry_run.stdout and command in dry_run.stdout


def test_no_note_when_nothing_is_stored(run) -> None:  # type: ignore[no-untyped-def]
    assert run("subscribers", "add", *SUBSCRIBERS[0]).exit_code == 0
    preview = run("preview", "ada@example.org")
    assert preview.exit_code == 0 and "0 new papers" in preview.stdout and not preview.stderr


def test_preview_formats(run) -> None:  # type: ignore[no-untyped-def]
    setup(run)
    window = ["--since", "2026-11-01", "--until", "2026-11-30"]
    text = run("preview", "ada@example.org", *window, "--format", "text").output
    assert "Graph" in text and "<" not in text
    html = run("preview", "ada@example.org", *window, "--format", "html").output
    assert html.lstrip().lower().startswith("<!doctype html")
    eml = email.message_from_string(
        run("preview", "ada@example.org", *window, "--format", "eml").output, policy=policy.default
    )
    assert eml["To"].addresses[0].addr_spec == "ada@example.org"
    assert [part.get_content_type() for part in eml.iter_parts()] == ["text/plain", "text/html"]


def test_preview_bad_dates_and_unknown_subscriber(run) -> None:  # type: ignore[no-untyped-def]
    setup(run)
    bad = run("preview", "ada@example.org", "--since", "last week")
    assert bad.exit_code == 2 and "--since 'last week' is not a date" in bad.stderr
    backwards = run("preview", "ada@example.org", "--since", "2026-02-01", "--until", "2026-01-01")
    assert "is after --until" in backwards.stderr
    assert "no subscriber nobody@example.org" in run("preview", "nobody@example.org").stderr


def test_dry_run_writes_one_eml_per_due_subscriber_and_changes_nothing(run, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup(run)
    with engine.begin() as connection:  # make both due now, with this month's sample in their window
        connection.exec_driver_sql(
            "UPDATE subscriber SET next_due_at = '2026-01-01 08:00:00', last_digest_at = '2025-12-01 08:00:00'"
        )
        connection.exec_driver_sql("UPDATE paper SET first_seen = '2025-12-15 00:00:00', published = '2025-12-10'")
    out = tmp_path / "outbox"
    result = run("send", "--dry-run", "--out", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(path.name for path in out.iterdir())
    assert files == ["ada@example.org-2026-01-01.eml", "emmy@example.org-2026-01-01.eml"]
    message = email.message_from_bytes((out / files[1]).read_bytes(), policy=policy.default)
    assert "Surface Code" in message.get_body(("plain",)).get_content()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM delivery").scalar() == 0
        assert connection.exec_driver_sql("SELECT count(*) FROM sent_paper").scalar() == 0


def test_dry_run_file_names_hold_any_valid_address(run, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("ingest", "--file", str(SAMPLE_PAPERS)).exit_code == 0
    for address in ("a/b@example.org", "c|d@example.org", "e*f@example.org"):  # valid local parts
        assert run("subscribers", "add", address, "--keywords", "graph neural networks").exit_code == 0
    out = tmp_path / "outbox"
    result = run("send", "--dry-run", "--out", str(out), "a/b@example.org", "c|d@example.org", "e*f@example.org")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    files = sorted(path.name for path in out.iterdir())
    assert len(files) == 3 and all(name.endswith(".eml") for name in files), files
    assert {name.split("@")[0] for name in files} == {"a_b", "c_d", "e_f"}


def test_demo_runs_offline_end_to_end(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    result = run("demo", "--out", str(out))
    assert result.exit_code == 0, result.output
    for name in ("ada", "emmy", "vera"):
        assert (out / f"{name}.eml").stat().st_size > 1000
        assert "<html" in (out / f"{name}.html").read_text()
    assert result.output.count("why:") >= 6
    assert "ada@example.org:" in result.output and "vera@example.org:" in result.output
