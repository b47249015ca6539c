"""Paper identity: canonical ids (arXiv id without version, else DOI, else a title hash),
the arXiv id a reader typed, and the arXiv ids a BibTeX file refers to.

Pure text handling, used by the sources, the subscriber records and the CLI alike."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit

_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v(\d+))?(?![\d])")
_ARXIV_OLD = re.compile(r"([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?")
_ARXIV_LINK = re.compile(r"^https?://(?:[a-z]+\.)?arxiv\.org/(?:abs|pdf|html)/(.+?)(?:\.pdf)?/?$", re.IGNORECASE)
_DOI = re.compile(r"10\.\d{4,9}/\S+")
# New style 2401.01234(v2); old style astro-ph/0601001, math.GT/0309136 (subject class kept).
_NEW_ID = re.compile(r"^(\d{4}\.\d{4,5})(?:v\d+)?$")
_OLD_ID = re.compile(r"^([a-z]+(?:-[a-z]+)*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d+)?$")
_ID_PREFIX = re.compile(r"^(?:https?://)?(?:www\.|export\.)?(?:arxiv\.org/(?:abs|pdf)/|arxiv:)", re.IGNORECASE)
# Where a BibTeX file names an arXiv id: eprint fields, arxiv.org links, "arXiv:ID" anywhere.
_BIBTEX_ID = re.compile(
    r"eprint\s*=\s*[{\"]?\s*(?P<eprint>[^\s{}\",]+)"
    r"|arxiv\.org/(?:abs|pdf)/(?P<url>[^\s{}\",]+)"
    r"|arxiv\s*:\s*(?P<tag>[^\s{}\",;]+)",
    re.IGNORECASE,
)


def split_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """`'http://arxiv.org/abs/2401.01234v2'` → `('2401.01234', 2)`; None if no arXiv id is in it."""
    value = text.strip()
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        match = pattern.search(value)
        if match:
            version = int(match.group(2)) if match.group(2) else None
            return match.group(1), version
    return None


def normalise_title(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", text))


def arxiv_id_from_link(url: str) -> tuple[str, int | None] | None:
    """The arXiv id in an arxiv.org abs/pdf link (`https://arxiv.org/abs/2401.01234v2`), else None.

    Links elsewhere are not searched: a journal URL full of digits is not an arXiv id."""
    match = _ARXIV_LINK.match(url.strip())
    return split_arxiv_id(match.group(1)) if match else None


def normalise_doi(text: str | None) -> str | None:
    """`'https://doi.org/10.1103/PhysRevB.85.115117'` → `'10.1103/physrevb.85.115117'`; None if no DOI."""
    match = _DOI.search(text or "")
    return match.group(0).rstrip(".,;").lower() if match else None


def canonical_id(*, arxiv_id: str | None = None, doi: str | None = None, title: str = "") -> str:
    """The id a paper is stored under, whichever source it came from."""
    if arxiv_id:
        found = split_arxiv_id(arxiv_id)
        if found:
            return found[0]
    normalised = normalise_doi(doi) if doi else None
    if normalised:
        return "doi:" + normalised
    if doi and doi.strip():
        return "doi:" + doi.strip().lower()
    digest = hashlib.sha256(normalise_title(title).encode()).hexdigest()[:16]
    return f"title:{digest}"


def clean_text(text: str | None) -> str:
    """Collapse the hard line-wraps and runs of white space feeds are full of."""
    return " ".join((text or "").split())


_TERMINAL_ESCAPE = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)?")
_WEB_LINK = re.compile(r"https?://[^\s<>\"\\\x00-\x1f\x7f]+", re.IGNORECASE)


def excerpt(text: str | None, limit: int = 100) -> str:
    """Remote text made safe to show: one line of at most `limit` characters, without control
    or format characters (terminal escapes, bidi overrides, zero-width marks)."""
    text = _TERMINAL_ESCAPE.sub(" ", text or "")
    kept = "".join(c if c == " " else _shown(c) for c in text)
    words = " ".join(kept.split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def _shown(char: str) -> str:
    """Control characters and any space or line break become a space; format (bidi,
    zero-width), private-use and unassigned characters are dropped."""
    category = unicodedata.category(char)
    if category == "Cc" or category[0] == "Z":
        return " "
    return "" if category[0] == "C" else char


def web_link(url: str | None) -> str | None:
    """`url` if it is an http(s) link a reader can safely be sent to; None for anything else
    (`javascript:`, `data:`, `file:`, relative or malformed links)."""
    text = (url or "").strip()
    if not _WEB_LINK.fullmatch(text):
        return None
    try:
        return text if urlsplit(text).hostname else None
    except ValueError:  # e.g. a malformed IPv6 literal
        return None


def normalise_arxiv_id(text: str) -> str | None:
    """The canonical arXiv id in `text` (version and URL/`arXiv:` prefix removed), or None."""
    candidate = _ID_PREFIX.sub("", text.strip()).removesuffix(".pdf").rstrip("/.")
    for pattern in (_NEW_ID, _OLD_ID):
        found = pattern.match(candidate)
        if found:
            return found.group(1)
    return None


def parse_bibtex_ids(text: str) -> list[str]:
    """arXiv ids a BibTeX file refers to, in order of appearance, each once.

    Reads `eprint = {...}`, arxiv.org/abs or /pdf links (url, note, howpublished) and
    `arXiv:ID` (e.g. `journal = {arXiv preprint arXiv:2401.01234}`); other eprints
    (PubMed ids, DOIs) are not arXiv ids and are skipped.
    """
    ids: list[str] = []
    for found in _BIBTEX_ID.finditer(text):
        raw = found.group("eprint") or found.group("url") or found.group("tag")
        arxiv_id = normalise_arxiv_id(raw)
        if arxiv_id and arxiv_id not in ids:
            ids.append(arxiv_id)
    return ids
