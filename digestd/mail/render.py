"""Render a `Digest` into its HTML and plain-text parts (see `message.py` for the email).

What does not depend on the subscriber (shortened authors, trimmed and wrapped
abstracts, links) is computed once per paper per run and kept in a `DigestRenderer`;
per email only the context (reasons, signed links) is built and the templates run.
An HTML part over `HTML_LIMIT` bytes is rendered again with shorter abstracts, and says so.
"""

from __future__ import annotations

import copy
import email
import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import jinja2

from digestd.config import MailSettings, WebSettings, check_accent_color, site_name
from digestd.mail.message import (
    DkimSigner,
    bounce_address,
    build_mime,
    clean_header,
    encode_header,
    envelope_address,
    format_address,
    list_id,
    list_name,
    list_unsubscribe,
    load_dkim_signer,
    message_id,
    mime_boundary,
    recipient_header,
    sender_address,
    sender_domain,
    unsubscribe_mailto,
    verp_address,
)
from digestd.mail.paper_view import PaperView, format_day, make_paper_view
from digestd.mail.templates import (
    Sandbox,
    SandboxedLoader,
    Templates,
    load_templates,
    template_error,
    templates_dir,
)
from digestd.mail.tokens import BOUNCE, DEV_SECRET_KEY, UNSUBSCRIBE, TokenSigner
from digestd.records import Digest, PaperRecord, Pick, Profile, Section

__all__ = [
    "DigestRenderer",
    "EmailBuilder",
    "Sandbox",
    "SandboxedLoader",
    "Templates",
    "load_templates",
    "render_email",
    "render_parts",
    "section_views",
    "templates_dir",
]

HTML_LIMIT = 90_000  # bytes; Gmail clips a message at about 102 KB
ABSTRACT_LIMITS = (600, 240, 0)  # characters: normal, then shorter to fit, then none
SHORTENED_NOTE = "Abstracts were shortened to keep this email small; follow the titles for the full text."


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


def section_views(
    digest: Digest, signer: TokenSigner, base_url: str, paper_view: Callable[[PaperRecord], PaperView]
) -> list[SectionView]:
    """The digest's sections as the templates show them, numbered in order, with their
    signed rating links (the email and its web page share them)."""
    sid, key = digest.profile.subscriber_id, digest.profile.link_key
    sections, number = [], 0
    for section in digest.sections:
        picks = []
        for pick in section.picks:
            paper, number = paper_view(pick.paper), number + 1
            picks.append(
                PickView(
                    paper=paper,
                    number=f"{number:>2}.",
                    reasons="; ".join(pick.reasons),
                    rate_up_url=f"{base_url}/rate/{signer.sign_rate(sid, key, paper.id, 1)}",
                    rate_down_url=f"{base_url}/rate/{signer.sign_rate(sid, key, paper.id, -1)}",
                )
            )
        sections.append(SectionView(section.label, picks))
    return sections


@dataclass(frozen=True)
class Face:
    """The site's look in the emails, as on its pages (`[web]`): name, accent colour, logo."""

    name: str = WebSettings.site_name
    accent: str = WebSettings.accent_color  # checked by `config.check_accent_color`
    logo_url: str = ""  # the web's /logo, absolute; empty: none


def face_of(web: WebSettings, mail: MailSettings) -> Face:
    logo = f"{mail.base_url.rstrip('/')}/logo" if web.logo_file else ""
    return Face(site_name(web), check_accent_color(web.accent_color), logo)


@dataclass
class DigestRenderer:
    """Renders digests of one run; caches paper views (per paper and abstract limit)."""

    templates: Templates
    mail: MailSettings
    signer: TokenSigner
    list_name: str
    face: Face = Face()
    _views: dict[tuple[str, int], PaperView] = field(default_factory=dict)

    def paper_view(self, paper: PaperRecord, limit: int) -> PaperView:
        key = (paper.id, limit)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = make_paper_view(paper, limit)
        return view

    def links(self, profile: Profile) -> dict[str, str]:
        base = self.mail.base_url.rstrip("/")
        sid, key = profile.subscriber_id, profile.link_key
        return {
            "manage_url": f"{base}/manage/{self.signer.sign_manage(sid, key)}",
            "unsubscribe_url": f"{base}/unsubscribe/{self.signer.sign_unsubscribe(sid, key)}",
        }

    def context(
        self, digest: Digest, *, period: str, limit: int, notes: tuple[str, ...] = (), ledger_period: str | None = None
    ) -> dict[str, Any]:
        """The templates' context; `ledger_period` (else `period`) names the digest's web page."""
        sid, key = digest.profile.subscriber_id, digest.profile.link_key
        base = self.mail.base_url.rstrip("/")
        sections = section_views(digest, self.signer, base, lambda paper: self.paper_view(paper, limit))
        count = sum(len(section.picks) for section in sections)
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
            "site": self.face,
            "base_url": base,
            "view_url": f"{base}/view/{self.signer.sign_view(sid, key, ledger_period or period)}",
            **self.links(digest.profile),
        }

    def render_parts(self, digest: Digest, *, period: str, ledger_period: str | None = None) -> tuple[str, str, Digest]:
        """(text, HTML, the digest as rendered). The HTML stays under `HTML_LIMIT` bytes:
        abstracts are shortened first; if that is not enough, the lowest-ranked papers go."""
        empty = digest.is_empty
        text_template = self.templates.empty_text if empty else self.templates.text
        html_template = self.templates.empty_html if empty else self.templates.html
        try:
            for limit in ABSTRACT_LIMITS:
                notes = () if limit == ABSTRACT_LIMITS[0] else (SHORTENED_NOTE,)
                context = self.context(digest, period=period, limit=limit, notes=notes, ledger_period=ledger_period)
                html = html_template.render(context)
                if len(html.encode()) <= HTML_LIMIT:
                    break
            while len(html.encode()) > HTML_LIMIT and len(digest.picks) > 1:
                keep = max(1, int(len(digest.picks) * HTML_LIMIT / len(html.encode()) * 0.95))
                digest = keep_top_picks(digest, keep)
                shortened = (SHORTENED_NOTE,)
                context = self.context(
                    digest, period=period, limit=ABSTRACT_LIMITS[-1], notes=shortened, ledger_period=ledger_period
                )
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
    eight_bit: bool = False  # the text part is 8bit: send with BODY=8BITMIME, to a relay that offers it
    smtputf8: bool = False  # the recipient is not ASCII before the @: send with SMTPUTF8, to a relay that offers it
    # What the ledger keeps to show this digest on the web: its sections as mailed, each
    # `{"label": ..., "papers": [{"id": ..., "reasons": [...]}]}` (`digest_sections`).
    sections: tuple[dict[str, Any], ...] = ()


class EmailBuilder:
    """Digest in, finished email out: templates, signed links, headers, MIME, DKIM."""

    def __init__(
        self, templates: Templates, mail: MailSettings, *, secret_key: str, dkim: DkimSigner | None, face: Face = Face()
    ) -> None:
        self.mail = mail
        self.renderer = DigestRenderer(templates, mail, TokenSigner(secret_key), list_name(mail), face)
        self.dkim = dkim
        self.sender_name, self.sender = sender_address(mail)
        self.from_header = encode_header("From", format_address(self.sender_name, self.sender))
        self.domain = sender_domain(mail)
        self.list_id = list_id(mail)
        self.mailto = unsubscribe_mailto(mail)
        self.bounce_address = bounce_address(mail)
        self.eight_bit = False

    def for_relay(self, *, eight_bit: bool) -> EmailBuilder:
        """This builder for a relay that does (or does not) offer 8BITMIME. A signed message
        stays 7-bit: a relay that re-encodes an 8bit part breaks its DKIM signature."""
        builder = copy.copy(self)
        builder.eight_bit = eight_bit and self.dkim is None
        return builder

    def return_addresses(self, profile: Profile, delivery_id: int | None) -> tuple[str, str]:
        """(envelope sender, mailto unsubscribe address). With
        `mail.bounce_address` and a ledger row, both addresses carry a signed token naming
        the row (VERP), so what comes back to them says which digest it is about."""
        if not self.bounce_address or delivery_id is None:
            return self.sender, self.mailto
        signer = self.renderer.signer
        bounce = signer.sign_return(BOUNCE, delivery_id, profile.link_key)
        unsubscribe = signer.sign_return(UNSUBSCRIBE, delivery_id, profile.link_key)
        return verp_address(self.bounce_address, bounce), verp_address(self.mailto, unsubscribe)

    def build(
        self, digest: Digest, *, period: str, now: datetime, day: str | None = None, delivery_id: int | None = None
    ) -> RenderedEmail:
        """`period` is the ledger's (it names the Message-ID); `day` dates the subject and the
        heading, the day it is sent (a catch-up digest is planned for the first day missed);
        `delivery_id` is its ledger row, named by the return addresses (`return_addresses`)."""
        profile = digest.profile
        text, html, digest = self.renderer.render_parts(digest, period=day or period, ledger_period=period)
        subject = subject_for(digest, day or period)
        mid = message_id(profile.subscriber_id, period, self.domain)
        token = self.renderer.signer.sign_unsubscribe(profile.subscriber_id, profile.link_key)
        url = clean_header(f"{self.mail.base_url.rstrip('/')}/unsubscribe/{token}")
        recipient, smtputf8 = envelope_address(profile.email)
        sender, mailto = self.return_addresses(profile, delivery_id)
        headers = [
            self.from_header,
            recipient_header(profile.name, recipient),
            encode_header("Subject", subject),
            f"Date: {format_datetime(now.astimezone(UTC))}",
            f"Message-ID: {mid}",
            encode_header("List-Id", self.list_id),
            f"List-Unsubscribe: {list_unsubscribe(url, mailto, token if mailto == self.mailto else '')}",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ]
        pack = not self.renderer.templates.html_lines_matter
        boundary = mime_boundary(mid)
        data, eight_bit = build_mime(
            headers, text, html, boundary=boundary, eight_bit=self.eight_bit, pack_html=pack, smtputf8=smtputf8
        )
        if self.dkim is not None:
            data = self.dkim.sign(data)
        paper_ids = tuple(pick.paper.id for pick in digest.picks)
        return RenderedEmail(
            profile.subscriber_id,
            recipient,
            sender,
            mid,
            subject,
            paper_ids,
            data,
            eight_bit=eight_bit,
            smtputf8=smtputf8,
            sections=digest_sections(digest),
        )


def digest_sections(digest: Digest) -> tuple[dict[str, Any], ...]:
    """The digest's sections and reasons as plain data, in the order the email shows them."""
    return tuple(
        {"label": s.label, "papers": [{"id": p.paper.id, "reasons": list(p.reasons)} for p in s.picks]}
        for s in digest.sections
    )


def sample_digest(now: datetime) -> Digest:
    """A small digest to try the templates on at start-up."""
    paper = PaperRecord(id="2401.00001", title="A sample", abstract="Sample text.", authors=("Ada Lovelace",))
    pick = Pick(paper=paper, score=1.0, reasons=("matched: sample",), section="Sample")
    profile = Profile(subscriber_id=1, email="sample@example.org", name="Sample", link_key="sample")
    return Digest(profile, now, now, (Section("Sample", (pick,)),), candidates=1, generated_at=now)


def make_email_builder(mail: MailSettings, *, secret_key: str, web: WebSettings | None = None) -> EmailBuilder:
    """Load templates and DKIM key and try them once, so problems show at start-up; `web`
    gives the site's name, colour and logo (`[web]`; the defaults without it)."""
    now = datetime(2000, 1, 1, tzinfo=UTC)
    face = face_of(web, mail) if web is not None else Face()

    def check(templates: Templates) -> None:
        trial = EmailBuilder(templates, mail, secret_key=secret_key, dkim=None, face=face)
        for digest in (sample_digest(now), Digest(sample_digest(now).profile, now, now)):
            trial.renderer.render_parts(digest, period="2000-01-01")

    templates = load_templates(mail, check=check)
    return EmailBuilder(templates, mail, secret_key=secret_key, dkim=load_dkim_signer(mail), face=face)


def render_parts(
    templates: Templates, digest: Digest, *, mail: MailSettings, secret_key: str = "", face: Face = Face()
) -> tuple[str, str]:
    """(text, HTML) of one digest, for previews (links signed with the development key
    unless `secret_key` is given)."""
    builder = EmailBuilder(templates, mail, secret_key=secret_key or DEV_SECRET_KEY, dkim=None, face=face)
    period = digest.period_end.date().isoformat()
    text, html, _ = builder.renderer.render_parts(digest, period=period)
    return text, html


def render_email(
    templates: Templates,
    digest: Digest,
    *,
    mail: MailSettings,
    period: str,
    now: datetime,
    secret_key: str = "",
    face: Face = Face(),
) -> EmailMessage:
    """One digest as an `EmailMessage`, for previews and the demo (delivery uses `EmailBuilder`)."""
    builder = EmailBuilder(templates, mail, secret_key=secret_key or DEV_SECRET_KEY, dkim=None, face=face)
    data = builder.build(digest, period=period, now=now).data
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message
