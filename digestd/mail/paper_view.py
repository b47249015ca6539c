"""How a paper appears in an email: shortened authors, a trimmed abstract (wrapped for the
text part), links to the abstract page and the PDF. Pure functions, computed once per
paper per run by `render.DigestRenderer`."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from datetime import date

from digestd.identity import web_link
from digestd.records import PaperRecord

TEXT_WIDTH = 72  # the text part's lines, before quoted-printable's 76
_SPACE = re.compile(r"\s+")
_ARXIV = re.compile(r"^(\d{4}\.\d{4,5}|[a-z][a-z\-]*(\.[A-Z]{2})?/\d{7})$")


def _initials(given: str) -> str:
    return "-".join(f"{part[0]}." for part in given.split("-") if part)


def shorten_author(name: str) -> str:
    """`Ada Lovelace` → `A. Lovelace`; `Lovelace, Ada` → `A. Lovelace`; one word stays."""
    name = _SPACE.sub(" ", name).strip()
    if "," in name:
        family, _, given = name.partition(",")
        name = f"{given.strip()} {family.strip()}".strip()
    words = name.split(" ")
    if len(words) < 2 or not words[0][:1].isalpha():
        return name
    return f"{_initials(words[0])} {' '.join(words[1:])}"


def shorten_authors(authors: tuple[str, ...], *, keep: int = 3) -> str:
    """Up to `keep + 1` authors in full; past that the first `keep` and "… and N others"."""
    names = [shorten_author(a) for a in authors if a.strip()]
    if len(names) <= keep + 1:
        return names[0] if len(names) == 1 else " and ".join([", ".join(names[:-1]), names[-1]]) if names else ""
    return f"{', '.join(names[:keep])}, … and {len(names) - keep} others"


def trim_abstract(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a sentence end if one is near, else at a word."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[:limit]
    sentence = cut.rfind(". ")
    if sentence >= limit * 0.6:
        return cut[: sentence + 1]
    return cut[: cut.rfind(" ")].rstrip(",;:") + " …" if " " in cut else cut + "…"


def paper_links(paper: PaperRecord) -> tuple[str, str]:
    """(abstract page, PDF) links, from the record or derived from an arXiv id or DOI.
    Only http(s) links are used (ingest drops the others; papers stored before it did may have them)."""
    abs_url, pdf_url = web_link(paper.abs_url) or "", web_link(paper.pdf_url) or ""
    if _ARXIV.match(paper.id):
        abs_url = abs_url or f"https://arxiv.org/abs/{paper.id}"
        pdf_url = pdf_url or f"https://arxiv.org/pdf/{paper.id}"
    elif paper.id.startswith("doi:"):
        abs_url = abs_url or f"https://doi.org/{paper.id.removeprefix('doi:')}"
    return abs_url, pdf_url


@dataclass(frozen=True, slots=True)
class PaperView:
    """A paper as the templates show it, prepared once per run."""

    id: str
    title: str
    title_text: str  # wrapped for the text part, lines after the first indented by 4
    authors: str
    abstract: str
    abstract_text: str  # wrapped and indented for the text part
    abs_url: str
    pdf_url: str


def make_paper_view(paper: PaperRecord, limit: int) -> PaperView:
    title = _SPACE.sub(" ", paper.title).strip()
    abstract = trim_abstract(paper.abstract, limit)
    abs_url, pdf_url = paper_links(paper)
    return PaperView(
        id=paper.id,
        title=title,
        title_text=textwrap.fill(title, TEXT_WIDTH, initial_indent="    ", subsequent_indent="    ")[4:],
        authors=shorten_authors(paper.authors),
        abstract=abstract,
        abstract_text=textwrap.fill(abstract, TEXT_WIDTH, initial_indent="   ", subsequent_indent="   "),
        abs_url=abs_url,
        pdf_url=pdf_url,
    )


def format_day(period: str) -> str:
    """`2026-11-30` → `30 Nov 2026`; other period names pass through."""
    try:
        return f"{date.fromisoformat(period):%-d %b %Y}"
    except ValueError:
        return period
