"""Paper files: JSONL, JSON (a list of objects) or CSV, optionally gzip-compressed.

Fields: `id, title, abstract, authors, categories, published` (plus optional
`primary_category`, `doi`, `updated`, `abs_url`, `pdf_url`). In CSV, `authors` and
`categories` are separated by `;` (categories may also be separated by spaces). A file
with any bad row is rejected whole, every bad row named with its line number.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from digestd.errors import SourceError
from digestd.identity import canonical_id, clean_text, split_arxiv_id
from digestd.records import PaperRecord

MAX_REPORTED_ERRORS = 20


def read_text(path: Path) -> str:
    """The file's text; gzip is recognised by its magic bytes, not its name."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise SourceError(f"{path} is not a valid gzip file: {error}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SourceError(f"{path} is not UTF-8 text (byte {error.start})", hint="convert it with iconv") from None


def _file_format(path: Path, text: str) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json" if text.lstrip().startswith("[") else "jsonl"
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        return "jsonl"
    raise SourceError(f"cannot tell the format of {path}", hint="name it .jsonl, .json or .csv (optionally .gz)")


def _rows(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """(line number, row) pairs; a row that is not even JSON is yielded as an error string."""
    kind = _file_format(path, text)
    if kind == "csv":
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            yield reader.line_num, row
    elif kind == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"not valid JSON ({error.msg})"
    else:
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise SourceError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}") from None
        if not isinstance(items, list):
            raise SourceError(f"{path} must hold a JSON list of papers")
        yield from enumerate(items, start=1)


def _list(value: Any, separators: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        return tuple(clean_text(str(v)) for v in value if str(v).strip())
    text = str(value)
    for separator in separators:
        if separator in text:
            return tuple(p.strip() for p in text.split(separator) if p.strip())
    return (text.strip(),)


def _date(value: Any) -> date | None:
    if not value:
        return None
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date() if "T" in text else date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"published {text!r} is not an ISO date (YYYY-MM-DD)") from None


def parse_row(row: Mapping[str, Any], *, source: str) -> PaperRecord:
    """One row → a `PaperRecord`, or `ValueError` saying what is wrong with it."""
    title, abstract = clean_text(row.get("title")), clean_text(row.get("abstract") or row.get("summary"))
    if not title:
        raise ValueError("title is missing")
    if not abstract:
        raise ValueError("abstract is missing")
    raw_id = str(row.get("id") or "").strip()
    arxiv = split_arxiv_id(raw_id) if raw_id else None
    doi = str(row.get("doi") or "").strip() or None
    paper_id = canonical_id(arxiv_id=raw_id if arxiv else None, doi=doi or (raw_id or None), title=title)
    categories = _list(row.get("categories"), "; ")
    return PaperRecord(
        id=paper_id,
        title=title,
        abstract=abstract,
        authors=_list(row.get("authors"), ";"),
        categories=categories,
        primary_category=row.get("primary_category") or (categories[0] if categories else None),
        published=_date(row.get("published")),
        version=arxiv[1] if arxiv else None,
        doi=doi,
        abs_url=row.get("abs_url") or (f"https://arxiv.org/abs/{paper_id}" if arxiv else None),
        pdf_url=row.get("pdf_url") or (f"https://arxiv.org/pdf/{paper_id}" if arxiv else None),
        source=source,
    )


def load_paper_file(path: Path, *, source: str = "file") -> list[PaperRecord]:
    """Every paper in the file, or `SourceError` listing the bad rows (nothing is returned)."""
    text = read_text(path)
    records: list[PaperRecord] = []
    errors: list[str] = []
    for number, row in _rows(path, text):
        if isinstance(row, str):
            errors.append(f"line {number}: {row}")
            continue
        if not isinstance(row, Mapping):
            errors.append(f"line {number}: expected an object with id, title, abstract, ...")
            continue
        try:
            records.append(parse_row(row, source=source))
        except ValueError as error:
            errors.append(f"line {number}: {error}")
    if errors:
        shown = "; ".join(errors[:MAX_REPORTED_ERRORS])
        more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise SourceError(f"{path}: {len(errors)} bad row(s), nothing imported: {shown}{more}")
    return records
