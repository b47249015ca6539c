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

from digestd.bounces.history import bounces_by_subscriber
from digestd.config import DigestSettings
from digestd.errors import DigestdError, InputError
from digestd.subscribers import (
    SubscriberInput,
    add_subscriber,
    check_input,
    describe,
    list_subscribers,
    load_profile_items,
)
from digestd.validation import load_json, read_csv, shown

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
    "trending",
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
    values: dict[Any, Any]  # a CSV row with more cells than the header has a `None` key


def read_subscriber_file(path: Path) -> list[SubscriberRow]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        items = load_json(text, what=str(path))
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise InputError(f"{path} must hold a JSON list of objects, one per subscriber")
        return [SubscriberRow(number, item) for number, item in enumerate(items, start=1)]
    header, rows = read_csv(text, what=str(path))
    if "email" not in header:
        raise InputError(f"{path} has no `email` column", hint=f"columns: {', '.join(FIELDS)}")
    return [SubscriberRow(line, {k: restore_cell(v) for k, v in row.items()}) for line, row in rows]


def _given(value: Any) -> Any:
    """None for an empty cell; anything else goes to `check_input` as it is."""
    return None if value is None or value == "" else value


def row_to_input(values: dict[Any, Any]) -> SubscriberInput:
    if None in values:
        raise InputError("the row has more cells than the header has columns")
    unknown = sorted(set(values) - set(FIELDS) - {"next_due_at", "bounces"})  # what show/export add
    if unknown:
        raise InputError(f"unknown column {shown(unknown[0])}")
    if not _given(values.get("email")):
        raise InputError("email is missing")
    given = SubscriberInput(email=values["email"], **{f: _given(values.get(f)) for f in FIELDS if f != "email"})
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
    if fmt == "json":  # with what came back about each (README, "Bounces"); import ignores it
        events = bounces_by_subscriber(session)
        for subscriber, row in zip([s for s in subscribers if s.id is not None], rows, strict=True):
            shown = events.get(subscriber.id or 0, [])
            row["bounces"] = [{**event, "received_at": event["received_at"].isoformat()} for event in shown]
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: defuse_cell(value) for name, value in row.items()} for row in rows)
    return buffer.getvalue()
