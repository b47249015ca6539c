"""Subscriber files: `export` writes CSV or JSON, `import` reads the same, all or nothing.
CSV cells that a spreadsheet would run as formulas are written defused (`defuse_cell`)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from digestd.config import DigestSettings
from digestd.errors import DigestdError, InputError
from digestd.subscribers import (
    SubscriberInput,
    add_subscriber,
    check_input,
    describe,
    list_subscribers,
    load_profile_items,
    parse_keywords,
    split_list,
)

FIELDS = [
    "email",
    "name",
    "status",
    "keywords",
    "exclude",
    "categories",
    "authors",
    "seeds",
    "frequency",
    "day",
    "time",
    "timezone",
    "weekdays_only",
    "category_filter",
    "max_papers",
    "min_score",
]
MAX_REPORTED = 50
# A spreadsheet runs a CSV cell that starts with one of = + - @ (or tab, CR) as a formula
# ("CSV injection"). Such a cell is exported after a `'` (OWASP's advice), and so is one
# that already starts with quotes before such a character, so that import, which takes
# one `'` off a cell that starts with quotes before it, gets every value back exactly.
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")
_DEFUSED = re.compile(r"'+[=+\-@\t\r]")


def defuse_cell(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and _FORMULA_START.match(value) else value


def restore_cell(value: Any) -> Any:
    return value[1:] if isinstance(value, str) and _DEFUSED.match(value) else value


@dataclass(frozen=True)
class SubscriberRow:
    line: int
    values: dict[str, Any]


def read_subscriber_file(path: Path) -> list[SubscriberRow]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}") from None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise InputError(f"{path} must hold a JSON list of objects, one per subscriber")
        return [SubscriberRow(number, item) for number, item in enumerate(items, start=1)]
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "email" not in reader.fieldnames:
        raise InputError(f"{path} has no `email` column", hint=f"columns: {', '.join(FIELDS)}")
    return [SubscriberRow(reader.line_num, {k: restore_cell(v) for k, v in row.items()}) for row in reader]


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any, kind: type, name: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} {value!r} is not a number") from None


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


def _authors(value: Any) -> list[str]:
    # Names contain commas ("Hinton, Geoffrey"), so a string of authors is split on ";".
    return split_list(value.split(";")) if isinstance(value, str) else split_list(value or [])


def row_to_input(values: dict[str, Any]) -> SubscriberInput:
    unknown = sorted(set(values) - set(FIELDS) - {"next_due_at"})
    if unknown:
        raise InputError(f"unknown column {unknown[0]!r}")
    if not _text(values.get("email")):
        raise InputError("email is missing")
    given = SubscriberInput(
        email=str(values["email"]),
        name=_text(values.get("name")),
        keywords=values.get("keywords") or None,
        exclude=values.get("exclude") or None,
        categories=split_list(values.get("categories")) or None,
        authors=_authors(values.get("authors")) or None,
        seeds=split_list(values.get("seeds")) or None,
        frequency=_text(values.get("frequency")),
        day=_text(values.get("day")),
        time=_text(values.get("time")),
        timezone=_text(values.get("timezone")),
        weekdays_only=_flag(values.get("weekdays_only")),
        category_filter=_flag(values.get("category_filter")),
        max_papers=_number(values.get("max_papers"), int, "max_papers"),
        min_score=_number(values.get("min_score"), float, "min_score"),
        status=_text(values.get("status")),
    )
    parse_keywords(given.keywords)
    return check_input(given)


def import_subscribers(
    session: Session, rows: Sequence[SubscriberRow], *, defaults: DigestSettings, now: datetime
) -> int:
    """Add every row, or none: all bad rows are reported together, with line numbers."""
    errors: list[str] = []
    seen: dict[str, int] = {}
    checked: list[tuple[int, SubscriberInput]] = []
    for row in rows:
        try:
            given = row_to_input(row.values)
        except DigestdError as error:
            errors.append(f"line {row.line}: {error.message}")
            continue
        if given.email in seen:
            errors.append(f"line {row.line}: {given.email} is already on line {seen[given.email]}")
            continue
        seen[given.email] = row.line
        checked.append((row.line, given))
    for line, given in checked if not errors else []:
        try:
            with session.begin_nested():
                add_subscriber(session, given, defaults=defaults, now=now)
        except DigestdError as error:
            errors.append(f"line {line}: {error.message}")
    if errors:
        shown = "; ".join(errors[:MAX_REPORTED])
        more = f" (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
        raise InputError(f"{len(errors)} bad row(s), nothing imported: {shown}{more}")
    return len(checked)


def export_subscribers(session: Session, fmt: str) -> str:
    subscribers = list_subscribers(session)
    items = load_profile_items(session, [s.id for s in subscribers if s.id is not None])
    rows = [describe(s, items[s.id]) for s in subscribers if s.id is not None]
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: defuse_cell(value) for name, value in row.items()} for row in rows)
    return buffer.getvalue()
