"""Render a `Digest` into its HTML and plain-text parts (see `message.py` for the email).

What does not depend on the subscriber (shortened authors, trimmed and wrapped
abstracts, links) is computed once per paper per run and kept in a `DigestRenderer`;
per email only the context (reasons, signed links) is built and the templates run.
An HTML part over `HTML_LIMIT` bytes is rendered again with shorter abstracts, and says so.
"""

from __future__ import annotations

import email
import email.policy
import re
import textwrap
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import jinja2

from digestd.config import MailSettings
from digestd.message import (
    DkimSigner,
    build_mime,
    clean_header,
    encode_header,
    format_address,
    list_id,
    list_name,
    list_unsubscribe,
    load_dkim_signer,
    message_id,
    mime_boundary,
    sender_address,
    sender_domain,
    unsubscribe_mailto,
)
from digestd.records import Digest, PaperRecord, Pick, Profile, Section
from digestd.templates import Templates, load_templates, template_error, templates_dir
from digestd.tokens import DEV_SECRET_KEY, TokenSigner

__all__ = ["DigestRenderer", "Templates", "load_templates", "shorten_authors", "templates_dir", "trim_abstract"]

HTML_LIMIT = 90_000  # bytes; Gmail clips a message at about 102 KB
ABSTRACT_LIMITS = (600, 240, 0)  # characters: normal, then shorter to fit, then none
SHORTENED_NOTE = "Abstracts were shortened to keep this email small; follow the titles for the full text."
TEXT_WIDTH = 72
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
    """(abstract page, PDF) links, from the record or derived from an arXiv id or DOI."""
    abs_url, pdf_url = paper.abs_url or "", paper.pdf_url or ""
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


@dataclass(frozen=True, slots=True)
class PickView:
    paper: PaperView
    number: str  # position in the email, right-aligned: " 1."
    reasons: str
    rate_up_url: str
    rate_down_url: str


@dataclass(frozen=True, slots=True)
class SectionView:
    label: str
    picks: list[PickView]


def format_day(period: str) -> str:
    """`2026-11-30` → `30 Nov 2026`; other period names pass through."""
    try:
        return f"{date.fromisoformat(period):%-d %b %Y}"
    except ValueError:
        return period


@dataclass
class DigestRenderer:
    """Renders digests of one run; caches paper views (per paper and abstract limit)."""

    templates: Templates
    mail: MailSettings
    signer: TokenSigner
    list_name: str
    _views: dict[tuple[str, int], PaperView] = field(default_factory=dict)

    def paper_view(self, paper: PaperRecord, limit: int) -> PaperView:
        key = (paper.id, limit)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = make_paper_view(paper, limit)
        return view

    def links(self, subscriber_id: int) -> dict[str, str]:
        base = self.mail.base_url.rstrip("/")
        return {
            "manage_url": f"{base}/manage/{self.signer.sign_manage(subscriber_id)}",
            "unsubscribe_url": f"{base}/unsubscribe/{self.signer.sign_unsubscribe(subscriber_id)}",
        }

    def context(self, digest: Digest, *, period: str, limit: int, notes: tuple[str, ...] = ()) -> dict[str, Any]:
        sid = digest.profile.subscriber_id
        base = self.mail.base_url.rstrip("/")
        shown = [pick for section in digest.sections for pick in section.picks]
        ranks = {id(pick): number for number, pick in enumerate(shown, start=1)}
        sections = []
        for section in digest.sections:
            picks = []
            for pick in section.picks:
                paper = self.paper_view(pick.paper, limit)
                picks.append(
                    PickView(
                        paper=paper,
                        number=f"{ranks[id(pick)]:>2}.",
                        reasons="; ".join(pick.reasons),
                        rate_up_url=f"{base}/rate/{self.signer.sign_rate(sid, paper.id, 1)}",
                        rate_down_url=f"{base}/rate/{self.signer.sign_rate(sid, paper.id, -1)}",
                    )
                )
            sections.append(SectionView(section.label, picks))
        count = len(ranks)
        return {
            "digest": digest,
            "subject": subject_for(digest, period),
            "heading": f"Your paper digest, {format_day(period)}",
            "intro": _intro(count, digest.candidates),
            "sections": sections,
            "notes": [*digest.notes, *notes],
            "candidates": digest.candidates,
            "email": digest.profile.email,
            "name": digest.profile.name,
            "list_name": self.list_name,
            "base_url": base,
            **self.links(sid),
        }

    def render_parts(self, digest: Digest, *, period: str) -> tuple[str, str, Digest]:
        """(text, HTML, the digest as rendered). The HTML stays under `HTML_LIMIT` bytes:
        abstracts are shortened first; if that is not enough, the lowest-ranked papers go."""
        empty = digest.is_empty
        text_template = self.templates.empty_text if empty else self.templates.text
        html_template = self.templates.empty_html if empty else self.templates.html
        try:
            for limit in ABSTRACT_LIMITS:
                notes = () if limit == ABSTRACT_LIMITS[0] else (SHORTENED_NOTE,)
                context = self.context(digest, period=period, limit=limit, notes=notes)
                html = html_template.render(context)
                if len(html.encode()) <= HTML_LIMIT:
                    break
            while len(html.encode()) > HTML_LIMIT and len(digest.picks) > 1:
                keep = max(1, int(len(digest.picks) * HTML_LIMIT / len(html.encode()) * 0.95))
                digest = keep_top_picks(digest, keep)
                context = self.context(digest, period=period, limit=ABSTRACT_LIMITS[-1], notes=(SHORTENED_NOTE,))
                html = html_template.render(context)
            return text_template.render(context), html, digest
        except jinja2.TemplateError as error:
            raise template_error(error, self.templates.folder) from None


def keep_top_picks(digest: Digest, keep: int) -> Digest:
    """The digest with only its `keep` best picks, saying how many were left out."""
    picks = digest.picks
    kept = {id(pick) for pick in picks[:keep]}
    sections = tuple(
        Section(s.label, tuple(p for p in s.picks if id(p) in kept))
        for s in digest.sections
        if any(id(p) in kept for p in s.picks)
    )
    note = f"{len(picks) - keep} more papers matched but were left out to keep this email small."
    return replace(digest, sections=sections, notes=(*digest.notes, note))


def _intro(count: int, candidates: int) -> str:
    if count == 0:
        return f"Nothing matched your interests among {candidates} new papers."
    papers = "paper" if count == 1 else "papers"
    return f"{count} {papers} picked for you from {candidates} new ones."


def subject_for(digest: Digest, period: str) -> str:
    count = len(digest.picks)
    if count == 0:
        return f"Your paper digest for {format_day(period)}: nothing new matched"
    return f"Your paper digest for {format_day(period)}: {count} paper{'s' if count != 1 else ''}"


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A finished message and what the ledger records about it."""

    subscriber_id: int
    recipient: str
    sender: str  # envelope sender
    message_id: str
    subject: str
    paper_ids: tuple[str, ...]
    data: bytes


class EmailBuilder:
    """Digest in, finished email out: templates, signed links, headers, MIME, DKIM."""

    def __init__(self, templates: Templates, mail: MailSettings, *, secret_key: str, dkim: DkimSigner | None) -> None:
        self.mail = mail
        self.renderer = DigestRenderer(templates, mail, TokenSigner(secret_key), list_name(mail))
        self.dkim = dkim
        self.sender_name, self.sender = sender_address(mail)
        self.domain = sender_domain(mail)
        self.list_id = list_id(mail)
        self.mailto = unsubscribe_mailto(mail)

    def build(self, digest: Digest, *, period: str, now: datetime) -> RenderedEmail:
        profile = digest.profile
        text, html, digest = self.renderer.render_parts(digest, period=period)
        subject = subject_for(digest, period)
        mid = message_id(profile.subscriber_id, period, self.domain)
        token = self.renderer.signer.sign_unsubscribe(profile.subscriber_id)
        url = clean_header(f"{self.mail.base_url.rstrip('/')}/unsubscribe/{token}")
        headers = [
            encode_header("From", format_address(self.sender_name, self.sender)),
            encode_header("To", format_address(profile.name, profile.email)),
            encode_header("Subject", subject),
            f"Date: {format_datetime(now.astimezone(UTC))}",
            f"Message-ID: {mid}",
            encode_header("List-Id", self.list_id),
            f"List-Unsubscribe: {list_unsubscribe(url, self.mailto, token)}",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ]
        data = build_mime(headers, text, html, boundary=mime_boundary(mid))
        if self.dkim is not None:
            data = self.dkim.sign(data)
        paper_ids = tuple(pick.paper.id for pick in digest.picks)
        return RenderedEmail(profile.subscriber_id, profile.email, self.sender, mid, subject, paper_ids, data)


def sample_digest(now: datetime) -> Digest:
    """A small digest to try the templates on at start-up."""
    paper = PaperRecord(id="2401.00001", title="A sample", abstract="Sample text.", authors=("Ada Lovelace",))
    pick = Pick(paper=paper, score=1.0, reasons=("matched: sample",), section="Sample")
    profile = Profile(subscriber_id=1, email="sample@example.org", name="Sample")
    return Digest(profile, now, now, (Section("Sample", (pick,)),), candidates=1, generated_at=now)


def make_email_builder(mail: MailSettings, *, secret_key: str) -> EmailBuilder:
    """Load templates and DKIM key and try them once, so problems show at start-up."""
    now = datetime(2000, 1, 1, tzinfo=UTC)

    def check(templates: Templates) -> None:
        trial = EmailBuilder(templates, mail, secret_key=secret_key, dkim=None)
        for digest in (sample_digest(now), Digest(sample_digest(now).profile, now, now)):
            trial.renderer.render_parts(digest, period="2000-01-01")

    templates = load_templates(mail, check=check)
    return EmailBuilder(templates, mail, secret_key=secret_key, dkim=load_dkim_signer(mail))


def render_parts(templates: Templates, digest: Digest, *, mail: MailSettings, secret_key: str = "") -> tuple[str, str]:
    """(text, HTML) of one digest, for previews (links signed with the development key
    unless `secret_key` is given)."""
    builder = EmailBuilder(templates, mail, secret_key=secret_key or DEV_SECRET_KEY, dkim=None)
    period = digest.period_end.date().isoformat()
    text, html, _ = builder.renderer.render_parts(digest, period=period)
    return text, html


def render_email(
    templates: Templates, digest: Digest, *, mail: MailSettings, period: str, now: datetime, secret_key: str = ""
) -> EmailMessage:
    """One digest as an `EmailMessage`, for previews and the demo (delivery uses `EmailBuilder`)."""
    builder = EmailBuilder(templates, mail, secret_key=secret_key or DEV_SECRET_KEY, dkim=None)
    data = builder.build(digest, period=period, now=now).data
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message
