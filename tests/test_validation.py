"""One validation path: every way in refuses the same bad value with the same one line.

Each bad value goes through the CLI (`subscribers add`, `edit`, `import` of CSV and JSON),
the web's sign-up and manage forms (the real app) and `ingest --file`, on SQLite and on
PostgreSQL (which refuses NUL bytes and over-long values with a DataError that used to
reach the user as a 500 page or a traceback). Each must be refused with one line naming
the field, and nothing may be written.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from starlette.testclient import TestClient
from web_support import START, Clock, Outbox, csrf_of, make_settings

from digestd.cli import cli
from digestd.config import DigestSettings
from digestd.mail.tokens import TokenSigner
from digestd.store import make_engine, migrate, open_session
from digestd.subscribers import SubscriberInput, add_subscriber
from digestd.web.app import create_app

ADA = "ada@example.org"  # exists in every database; `edit` and the manage form change her
NEW = "new@example.org"  # does not exist; `add`, `import` and the sign-up form create him


@dataclass(frozen=True)
class World:
    url: str
    engine: Engine
    ada_id: int
    ada_link_key: str  # manage links are signed with it
    web: TestClient  # the real app on this database
    outbox: Outbox


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One migrated database per kind for the whole module (nothing a test does is kept)."""

    def build(url: str) -> Iterator[World]:
        engine = make_engine(url)
        migrate(engine)
        with open_session(engine) as session:
            given = SubscriberInput(email=ADA, name="Ada", keywords="optics")
            ada = add_subscriber(session, given, defaults=DigestSettings(), now=START)
            ada_id, ada_link_key = ada.id, ada.link_key
        assert ada_id is not None
        outbox = Outbox()
        app = create_app(make_settings(subscribe_per_ip_per_hour=10_000), engine, send_message=outbox, now=Clock())
        with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as web:
            yield World(url, engine, ada_id, ada_link_key, web, outbox)
        engine.dispose()

    if request.param == "sqlite":
        yield from build(f"sqlite:///{tmp_path_factory.mktemp('validation') / 'digestd.sqlite3'}")
    else:
        yield from build(request.getfixturevalue("module_postgres_url"))


def snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    """Everything a refused value must leave as it was."""
    with engine.connect() as connection:
        rows = [("subscriber", *row) for row in connection.execute(text("SELECT * FROM subscriber ORDER BY id"))]
        query = "SELECT subscriber_id, kind, value, weight FROM profile_item ORDER BY id"
        rows += [("profile_item", *row) for row in connection.execute(text(query))]
        rows += [("paper", *row) for row in connection.execute(text("SELECT id, title FROM paper ORDER BY id"))]
    return rows


# --- the ways in --------------------------------------------------------------------------

# CLI option for each field (authors and seeds are repeatable options, the others take text).
OPTIONS = {field: f"--{field.replace('_', '-')}" for field in ("name", "keywords", "exclude", "timezone", "time")}
OPTIONS |= {"categories": "--category", "authors": "--author", "seeds": "--seed", "min_score": "--min-score"}


def refused_by_cli(world: World, args: list[str]) -> str:
    """Run `digestd ARGS`; it must fail with one `error:` line (and maybe a hint, or the
    progress line of `ingest`). Returns that line."""
    result = CliRunner().invoke(cli, ["--database", world.url, *args], env={"DIGESTD_CONFIG": ""})
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line and not line.startswith(("hint: ", "importing "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def cli_add(world: World, field: str, value: str, tmp_path: Path) -> str:
    profile = {"keywords": "optics", field: value} if field != "no interests" else {}
    email = profile.pop("email", NEW)
    args = [arg for name, given in profile.items() for arg in (OPTIONS[name], given)]
    return refused_by_cli(world, ["subscribers", "add", email, *args])


def cli_edit(world: World, field: str, value: str, tmp_path: Path) -> str:
    if field == "no interests":
        return refused_by_cli(world, ["subscribers", "edit", ADA, "--keywords", ""])
    if field == "email":
        return refused_by_cli(world, ["subscribers", "edit", value, "--name", "Ada"])
    return refused_by_cli(world, ["subscribers", "edit", ADA, OPTIONS[field], value])


def _import_row(field: str, value: str) -> dict[str, str]:
    if field == "no interests":
        return {"email": NEW}
    return {"email": NEW, "keywords": "optics", field: value}


def import_csv(world: World, field: str, value: str, tmp_path: Path) -> str:
    row = _import_row(field, value)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    path = tmp_path / "subscribers.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return refused_by_cli(world, ["subscribers", "import", str(path)])


def import_json(world: World, field: str, value: str, tmp_path: Path) -> str:
    path = tmp_path / "subscribers.json"
    path.write_text(json.dumps([_import_row(field, value)]), encoding="utf-8")
    return refused_by_cli(world, ["subscribers", "import", str(path)])


def _form(client: TestClient, path: str, field: str, value: str, **base: str) -> dict[str, Any]:
    page = path  # the page whose form posts to `path` (the sign-up form is at /subscribe)
    data: dict[str, Any] = {"csrf": csrf_of(client, page), "frequency": "weekly", "day": "mon", "time": "08:00"}
    data |= {"timezone": "UTC", **base}
    if field == "no interests":
        return {**data, "keywords": ""}
    return data | ({"category": [value]} if field == "categories" else {field: value})


def refused_by_web(world: World, path: str, field: str, value: str, **base: str) -> str:
    page = world.web.post(path, data=_form(world.web, path, field, value, **base))
    assert 400 <= page.status_code < 500, page.text
    assert world.outbox.messages == []
    return html.unescape(page.text)


def web_signup(world: World, field: str, value: str, tmp_path: Path) -> str:
    return refused_by_web(world, "/subscribe", field, value, **({"keywords": "optics", "email": NEW}))


def web_manage(world: World, field: str, value: str, tmp_path: Path) -> str:
    token = TokenSigner(make_settings().secret_key).sign_manage(world.ada_id, world.ada_link_key)
    return refused_by_web(world, f"/manage/{token}", field, value, keywords="optics", action="save")


ENTRY_POINTS = {
    "cli-add": cli_add,
    "cli-edit": cli_edit,
    "import-csv": import_csv,
    "import-json": import_json,
    "web-signup": web_signup,
    "web-manage": web_manage,
}
CLI_ONLY = ("cli-add", "cli-edit", "import-csv", "import-json")
IMPORT_ONLY = ("import-csv", "import-json")
NOT_SIGNUP = ("cli-add", "cli-edit", "import-csv", "import-json", "web-manage")
NOT_MANAGE = ("cli-add", "cli-edit", "import-csv", "import-json", "web-signup")


def too_long(field: str, value: str, limit: int) -> str:
    """The line for a value over its limit: the value's start, its length, the limit."""
    return f"{field} '{value[:40]}…' ({len(value)} characters) is not allowed: at most {limit} characters"


LONG_KEYWORD, LONG_CATEGORY, LONG_TIMEZONE = "k" * 301, "cs." + "a" * 60, "Europe/" + "b" * 70

# (field, bad value, what every way in must say, the ways in that have the field: all if empty)
BAD_VALUES: list[tuple[str, str, str, tuple[str, ...]]] = [
    (
        "name",
        "Ada\x00",
        r"name 'Ada\x00' is not allowed: it contains the control character '\x00' (at character 4)",
        (),
    ),
    ("name", "\x1b[31mAda", r"name '\x1b[31mAda' is not allowed: it contains the control character '\x1b'", ()),
    ("name", "A" * 201, too_long("name", "A" * 201, 200), ()),
    (
        "name",
        "Ada\u202egro.elpmaxe",
        r"name 'Ada\u202egro.elpmaxe' is not allowed: it contains the bidirectional control U+202E (at character 4)",
        (),
    ),
    (
        "keywords",
        "optics\u2066",
        r"keyword 'optics\u2066' is not allowed: it contains the bidirectional control U+2066",
        (),
    ),
    ("keywords", "optics\x00", r"keyword 'optics\x00' is not allowed: it contains the control character", ()),
    ("keywords", LONG_KEYWORD, too_long("keyword", LONG_KEYWORD, 300), ()),
    ("keywords", ", ".join(f"k{i}" for i in range(101)), "keyword: 101 given, at most 100 are allowed", ()),
    ("keywords", "optics, :2", "keyword ':2' is not allowed: it has a weight but no words", ()),
    ("exclude", "x" * 301, too_long("excluded word", "x" * 301, 300), ()),
    ("categories", LONG_CATEGORY, too_long("category", LONG_CATEGORY, 50), ()),
    ("categories", "cs.LG\x00", r"category 'cs.LG\x00' is not allowed: it contains the control character", ()),
    ("timezone", "UTC\x00", r"timezone 'UTC\x00' is not allowed: it contains the control character", ()),
    ("timezone", LONG_TIMEZONE, too_long("timezone", LONG_TIMEZONE, 64), ()),
    ("time", "08:00\x07", r"time '08:00\x07' is not allowed: it contains the control character", ()),
    ("email", "ada\x00@example.org", r"email 'ada\x00@example.org' is not allowed: it contains", NOT_MANAGE),
    ("authors", "A" * 301, too_long("author", "A" * 301, 300), CLI_ONLY),
    ("seeds", "2401.00001\x00", r"seed '2401.00001\x00' is not allowed: it contains the control", NOT_SIGNUP),
    ("min_score", "nan", "min score nan is not allowed: expected a finite number", CLI_ONLY),
    ("min_score", "inf", "min score inf is not allowed: expected a finite number", CLI_ONLY),
    ("min_score", "-1", "min score -1.0 is not allowed: must be 0 or more", CLI_ONLY),
    ("max_papers", "2.5", "max papers 2.5 is not allowed: expected a whole number", IMPORT_ONLY),
    ("weekdays_only", "maybe", "weekdays only 'maybe' is not allowed: expected true or false", IMPORT_ONLY),
    ("no interests", "", "no interests given: give at least one keyword, category, author or seed paper", ()),
]


def _cases() -> Iterator[Any]:
    for field, value, message, where in BAD_VALUES:
        for name in where or ENTRY_POINTS:
            case = f"{name}-{field}-{value[:12].encode('unicode_escape').decode()}"
            yield pytest.param(name, field, value, message, id=case)


@pytest.mark.parametrize(("entry", "field", "value", "message"), list(_cases()))
def test_every_way_in_refuses_the_same_bad_value_alike(
    world: World, tmp_path: Path, entry: str, field: str, value: str, message: str
) -> None:
    before = snapshot(world.engine)
    shown = ENTRY_POINTS[entry](world, field, value, tmp_path)
    assert message in shown
    assert snapshot(world.engine) == before


# --- files that `ingest --file` and `subscribers import` read ----------------------------

GOOD_PAPER = {"id": "2401.00001", "title": "A paper", "abstract": "About optics.", "categories": ["physics.optics"]}
INGEST, IMPORT = ["ingest", "--file"], ["subscribers", "import"]

# (the command, file name, what it holds, what the command must say); bad rows of a paper
# file are counted and named, as for any bad row, and nothing is imported.
BAD_FILES: list[tuple[list[str], str, str, str]] = [
    (
        INGEST,
        "number.jsonl",
        json.dumps(GOOD_PAPER) + "\n" + json.dumps({**GOOD_PAPER, "id": "2401.00002", "title": 123}),
        "1 bad row(s), nothing imported: line 2: title 123 is not allowed: expected text",
    ),
    (
        INGEST,
        "nul.json",
        json.dumps([GOOD_PAPER, {**GOOD_PAPER, "id": "2401.00002", "title": "A\x00paper"}]),
        r"line 2: title 'A\x00paper' is not allowed: it contains the control character '\x00'",
    ),
    (INGEST, "long-title.jsonl", json.dumps({**GOOD_PAPER, "title": "t" * 1001}), too_long("title", "t" * 1001, 1000)),
    (
        INGEST,
        "long-category.jsonl",
        json.dumps({**GOOD_PAPER, "categories": ["physics." + "o" * 60]}),
        "line 1: " + too_long("category", "physics." + "o" * 60, 50),
    ),
    (
        INGEST,
        "long-doi.jsonl",
        json.dumps({**GOOD_PAPER, "id": "", "doi": "10.1000/" + "d" * 200}),
        "line 1: " + too_long("doi", "10.1000/" + "d" * 200, 200),
    ),
    (INGEST, "deep.json", "[" * 100_000 + "]" * 100_000, "deep.json: cannot be read, its JSON is nested too deeply"),
    (
        INGEST,
        "deep.jsonl",
        json.dumps(GOOD_PAPER) + "\n" + '{"title": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "1 bad row(s), nothing imported: line 2: cannot be read, its JSON is nested too deeply",
    ),
    (
        INGEST,
        "big.csv",
        "id,title,abstract\n2401.00001,A paper,About optics.\n2401.00002,Big," + "x" * 140_000 + "\n",
        "big.csv: line 3: a field is longer than 131072 characters (128 KiB), the most a CSV field may hold",
    ),
    (
        INGEST,
        "digits.jsonl",
        json.dumps(GOOD_PAPER)[:-1] + ', "popularity": ' + "9" * 5000 + "}",
        "1 bad row(s), nothing imported: line 1: cannot be read, a number in it has too many digits",
    ),
    (IMPORT, "deep.json", "[" * 100_000 + "]" * 100_000, "deep.json: cannot be read, its JSON is nested too deeply"),
    (
        IMPORT,
        "big.csv",
        f"email,keywords,name\n{NEW},optics,{'x' * 140_000}\n",
        "big.csv: line 2: a field is longer than 131072 characters (128 KiB), the most a CSV field may hold",
    ),
    (IMPORT, "wide.csv", f"email,keywords\n{NEW},optics,extra\n", "the row has more cells than the header has columns"),
    (IMPORT, "nested.json", json.dumps([{"email": NEW, "keywords": [["optics"]]}]), "keyword a list is not allowed"),
    (
        IMPORT,
        "digits.json",
        f'[{{"email": "{NEW}", "max_papers": {"9" * 5000}}}]',
        "a number in it has too many digits",
    ),
]


@pytest.mark.parametrize(
    ("command", "name", "content", "message"), BAD_FILES, ids=[f"{case[0][0]}-{case[1]}" for case in BAD_FILES]
)
def test_bad_files_are_refused_with_one_line(
    world: World, tmp_path: Path, command: list[str], name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    before = snapshot(world.engine)
    assert message in refused_by_cli(world, [*command, str(path)])
    assert snapshot(world.engine) == before
