"""The checks every entry point shares, and the limits they check against.

The CLI, the web forms, `subscribers import`, `ingest --file` and the settings all call
these, so a value is refused the same way wherever it comes from, and on SQLite (which
enforces no column size and stores NUL) as on PostgreSQL (which refuses both). The
column sizes in `models` are the constants below. A refusal is one line: the field, the
value (shortened, control characters escaped) and what is allowed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

from digestd.errors import ConfigError, DigestdError, InputError

# Column sizes (`models` uses these).
EMAIL_MAX = 320
NAME_MAX = 200
TIMEZONE_MAX = 64
PROFILE_VALUE_MAX = 300  # a keyword, excluded word, author or seed paper
CATEGORY_MAX = 50  # an arXiv category, in a profile or on a paper (the longest real one has 18)
PAPER_ID_MAX = 200
DOI_MAX = 200
SOURCE_NAME_MAX = 100
ENCODER_MODEL_MAX = 900  # `[encoder] model`, a name or a folder: with its token limit, `text_vector.encoder`
# Bounds that are not column sizes (those columns are unbounded text).
TITLE_MAX = 1000  # the longest title of the 14,370 papers in shared/data has 229 characters
PROFILE_ITEMS_MAX = 100  # keywords (or categories, authors...) in one profile
MAX_PAPERS = 200  # papers in one digest
CSV_FIELD_MAX = csv.field_size_limit()  # 131,072 characters: Python's csv refuses longer fields

# C0 and C1 control characters, and lone surrogates (text no database can store); then the
# same but for the white space that `str.split()` collapses (tab, line and page breaks).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_WHITESPACE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff]")
# Bidirectional embeddings, overrides and isolates: they make a name or keyword read, in a
# digest or a page, differently from what it is ("Trojan Source"); the marks U+200E/F stay.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SHOWN_CHARACTERS = 40
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def shown(value: object) -> str:
    """A value for an error line: quoted, control characters escaped, long text shortened."""
    if isinstance(value, str):
        if len(value) <= _SHOWN_CHARACTERS:
            return repr(value)
        return f"{value[:_SHOWN_CHARACTERS] + '…'!r} ({len(value)} characters)"
    if value is None or isinstance(value, bool | int | float):
        text = repr(value)
        return text if len(text) <= _SHOWN_CHARACTERS else f"{text[:_SHOWN_CHARACTERS]}… ({len(text)} digits)"
    if isinstance(value, list | tuple):
        return "a list"
    return "an object" if isinstance(value, dict) else f"a {type(value).__name__}"


def refusal(field: str, value: object, why: str, error: type[DigestdError] = InputError) -> DigestdError:
    """`field value is not allowed: why`; settings write `key = value` as in the file."""
    separator = " = " if issubclass(error, ConfigError) else " "
    return error(f"{field}{separator}{shown(value)} is not allowed: {why}")


def control_character(text: str, *, lines: bool = False) -> str | None:
    """The first control character in `text` (tab and line breaks count unless `lines`)."""
    found = (_CONTROL_BUT_WHITESPACE if lines else _CONTROL).search(text)
    return found.group() if found else None


def check_text(
    field: str,
    value: object,
    *,
    max_length: int | None = None,
    lines: bool = False,
    error: type[DigestdError] = InputError,
) -> str:
    """`value` if it is text without control characters (tabs and line or page breaks
    too, unless `lines`) and at most `max_length` characters long."""
    if not isinstance(value, str):
        raise refusal(field, value, "expected text", error)
    found = control_character(value, lines=lines)
    if found:
        why = f"it contains the control character {found!r} (at character {value.index(found) + 1})"
        raise refusal(field, value, why, error)
    bidi = _BIDI_CONTROL.search(value)
    if bidi:
        why = f"it contains the bidirectional control U+{ord(bidi.group()):04X} (at character {bidi.start() + 1})"
        raise refusal(field, value, why, error)
    if max_length is not None and len(value) > max_length:
        raise refusal(field, value, f"at most {max_length} characters", error)
    return value


def check_items(
    field: str,
    value: object,
    *,
    max_length: int | None,
    separator: str = ",",
    max_items: int = PROFILE_ITEMS_MAX,
    error: type[DigestdError] = InputError,
) -> list[str]:
    """A list of text items (`"a, b"` split on `separator`, or a list of strings), each
    stripped and checked like `check_text`; no empties, no repeats, at most `max_items`."""
    if isinstance(value, str):
        parts: Sequence[object] = value.split(separator)
    elif isinstance(value, list | tuple):
        parts = value
    else:
        raise refusal(field, value, "expected text or a list of text", error)
    items: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise refusal(field, part, "expected text", error)
        item = check_text(field, part.strip(), max_length=max_length, error=error)
        if item and item not in items:
            items.append(item)
    if len(items) > max_items:
        raise error(f"{field}: {len(items)} given, at most {max_items} are allowed")
    return items


def check_number(
    field: str,
    value: object,
    *,
    whole: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    error: type[DigestdError] = InputError,
) -> Any:
    """A finite number (an `int` if `whole`) from a number or its text, within the bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise refusal(field, value, "expected a number", error)
    try:
        number: float = value if isinstance(value, int) else float(value)
    except ValueError:
        raise refusal(field, value, "expected a number", error) from None
    # A number is shown as it was given; text that holds one is shown as that number.
    given = value if isinstance(value, int | float) else number
    if not math.isfinite(number):
        raise refusal(field, given, "expected a finite number", error)
    if whole and number != int(number):
        raise refusal(field, given, "expected a whole number", error)
    number = int(number) if whole else float(number)
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise refusal(field, given, f"use {_plain(minimum)} to {_plain(maximum)}", error)
    if minimum is not None and number < minimum:
        raise refusal(field, given, f"must be {_plain(minimum)} or more", error)
    if maximum is not None and number > maximum:
        raise refusal(field, given, f"must be {_plain(maximum)} or less", error)
    if above is not None and number <= above:
        raise refusal(field, given, f"must be greater than {_plain(above)}", error)
    return number


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def check_flag(field: str, value: object, *, error: type[DigestdError] = InputError) -> bool:
    """`True`/`False` from a boolean or from 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    raise refusal(field, value, "expected true or false", error)


def load_json(text: str, *, what: str, error: type[DigestdError] = InputError) -> Any:
    """Parsed JSON, or one line `what: why` (a document nested so deeply that the parser
    would exhaust the stack included)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{what}: not valid JSON ({problem.msg} at line {problem.lineno})") from None
    except ValueError:  # Python reads integers of at most 4,300 digits
        raise error(f"{what}: cannot be read, a number in it has too many digits") from None
    except RecursionError:
        raise error(f"{what}: cannot be read, its JSON is nested too deeply") from None


def read_csv(
    text: str, *, what: str, error: type[DigestdError] = InputError
) -> tuple[list[str], Iterator[tuple[int, dict[str | None, Any]]]]:
    """The header and the rows (line number, values by column) of a CSV text; a line the
    csv module cannot read (a field over `CSV_FIELD_MAX`, say) stops the file with one line."""
    reader = csv.DictReader(io.StringIO(text))

    def problem(reason: csv.Error) -> DigestdError:
        if "field larger than field limit" in str(reason):
            why = f"a field is longer than {CSV_FIELD_MAX} characters (128 KiB), the most a CSV field may hold"
        else:
            why = f"not valid CSV ({reason})"
        return error(f"{what}: line {reader.line_num + 1}: {why}")  # the line being read is not counted yet

    try:
        header = list(reader.fieldnames or [])
    except csv.Error as reason:
        raise problem(reason) from None

    def rows() -> Iterator[tuple[int, dict[str | None, Any]]]:
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as reason:
            raise problem(reason) from None

    return header, rows()
