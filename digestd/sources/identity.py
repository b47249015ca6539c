"""Canonical paper identity: arXiv id without version, else DOI, else a title hash."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v(\d+))?(?![\d])")
_ARXIV_OLD = re.compile(r"([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?")
_ARXIV_LINK = re.compile(r"^https?://(?:[a-z]+\.)?arxiv\.org/(?:abs|pdf|html)/(.+?)(?:\.pdf)?/?$", re.IGNORECASE)
_DOI = re.compile(r"10\.\d{4,9}/\S+")


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
