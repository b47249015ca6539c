"""Paper files: JSONL, JSON (a list of objects) or CSV, optionally gzip-compressed.

Fields: `id, title, abstract, authors, categories, published` (plus optional
`primary_category`, `doi`, `updated`, `abs_url`, `pdf_url`). In CSV, `authors` and
`categories` are separated by `;` (categories may also be separated by spaces). Values
are checked with `validation` (text, no control characters, the columns' sizes). A file
with any bad row is rejected whole, every bad row named with its line number.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from digestd.errors import InputError, SourceError
from digestd.identity import canonical_id, clean_text, split_arxiv_id
from digestd.records import PaperRecord
from digestd.validation import CATEGORY_MAX, DOI_MAX, PAPER_ID_MAX, TITLE_MAX, check_text, load_json, read_csv

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
    """(line number, row) pairs; a row that is not even JSON is yielded as its error line."""
    kind = _file_format(path, text)
    if kind == "csv":
        yield from read_csv(text, what=str(path), error=SourceError)[1]
    elif kind == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, load_json(line, what=f"line {number}", error=SourceError)
            except SourceError as error:
                yield number, error.message
    else:
        items = load_json(text, what=str(path), error=SourceError)
        if not isinstance(items, list):
            raise SourceError(f"{path} must hold a JSON list of papers")
        yield from enumerate(items, start=1)


def _text(name: str, value: Any, *, max_length: int | None = None) -> str:
    """A field's text with its white space collapsed ('' if absent), or `InputError`."""
    if value is None:
        return ""
    return check_text(name, clean_text(check_text(name, value, lines=True)), max_length=max_length)


def _list(name: str, value: Any, separators: str, *, max_length: int | None = None) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        return tuple(text for v in value if (text := _text(name, v, max_length=max_length)))
    text = _text(name, value)
    parts = next((text.split(separator) for separator in separators if separator in text), [text])
    return tuple(_text(name, part.strip(), max_length=max_length) for part in parts if part.strip())


def _date(value: Any) -> date | None:
    if not value:
        return None
    text = _text("published", value)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date() if "T" in text else date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"published {text!r} is not an ISO date (YYYY-MM-DD)") from None


def parse_row(row: Mapping[str, Any], *, source: str) -> PaperRecord:
    """One row → a `PaperRecord`, or `ValueError`/`InputError` saying what is wrong with it."""
    title = _text("title", row.get("title"), max_length=TITLE_MAX)
    abstract = _text("abstract", row.get("abstract") or row.get("summary"))
    if not title:
        raise ValueError("title is missing")
    if not abstract:
        raise ValueError("abstract is missing")
    raw_id = _text("id", row.get("id"))
    arxiv = split_arxiv_id(raw_id) if raw_id else None
    doi = _text("doi", row.get("doi"), max_length=DOI_MAX) or None
    paper_id = canonical_id(arxiv_id=raw_id if arxiv else None, doi=doi or (raw_id or None), title=title)
    check_text("id", paper_id, max_length=PAPER_ID_MAX)
    categories = _list("category", row.get("categories"), "; ", max_length=CATEGORY_MAX)
    primary = _text("primary_category", row.get("primary_category"), max_length=CATEGORY_MAX)
    return PaperRecord(
        id=paper_id,
        title=title,
        abstract=abstract,
        authors=_list("author", row.get("authors"), ";"),
        categories=categories,
        primary_category=primary or (categories[0] if categories else None),
        published=_date(row.get("published")),
        version=arxiv[1] if arxiv else None,
        doi=doi,
        abs_url=_text("abs_url", row.get("abs_url")) or (f"https://arxiv.org/abs/{paper_id}" if arxiv else None),
        pdf_url=_text("pdf_url", row.get("pdf_url")) or (f"https://arxiv.org/pdf/{paper_id}" if arxiv else None),
        source=source,
    )


def load_paper_file(path: Path, *, source: str = "file") -> list[PaperRecord]:
    """Every paper in the file, or `SourceError` listing the bad rows (nothing is returned)."""
    text = read_text(path)
    records: list[PaperRecord] = []
    errors: list[str] = []
    for number, row in _rows(path, text):
        if isinstance(row, str):
            errors.append(row)
            continue
        if not isinstance(row, Mapping):
            errors.append(f"line {number}: expected an object with id, title, abstract, ...")
            continue
        try:
            records.append(parse_row(row, source=source))
        except (ValueError, InputError) as error:
            errors.append(f"line {number}: {error}")
    if errors:
        shown = "; ".join(errors[:MAX_REPORTED_ERRORS])
        more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise SourceError(f"{path}: {len(errors)} bad row(s), nothing imported: {shown}{more}")
    return records
