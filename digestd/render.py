"""Render a `Digest` into an email: Jinja2 HTML and plain text, one `EmailMessage`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

import jinja2

from digestd.config import MailSettings
from digestd.errors import RenderError
from digestd.records import Digest

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def templates_dir(mail: MailSettings) -> Path:
    """The operator's `mail.templates_dir`, or the templates shipped with digestd."""
    if mail.templates_dir:
        return Path(mail.templates_dir).expanduser()
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "templates", package / "_templates"):
        if (candidate / "digest.html").exists():
            return candidate
    raise RenderError("the email templates are missing from this installation", hint="reinstall digestd")


@dataclass(frozen=True)
class Templates:
    html: jinja2.Template
    text: jinja2.Template


def load_templates(mail: MailSettings) -> Templates:
    """Load and compile the templates now, so a broken one fails at start-up with file and line."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir(mail)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    try:
        return Templates(html=env.get_template("digest.html"), text=env.get_template("digest.txt"))
    except jinja2.TemplateSyntaxError as error:
        raise RenderError(f"template {error.filename}, line {error.lineno}: {error.message}") from None
    except jinja2.TemplateNotFound as error:
        raise RenderError(f"template {error.name} not found in {templates_dir(mail)}") from None


def clean_header(value: str) -> str:
    """No CR, LF or other control character may reach a header."""
    return " ".join(_CONTROL.sub(" ", value).split())


def subject_for(digest: Digest) -> str:
    count = len(digest.picks)
    day = digest.period_end.date().isoformat()
    return f"Your paper digest for {day}: {count} paper{'s' if count != 1 else ''}"


def message_id(digest: Digest, period: str, mail: MailSettings) -> str:
    """Deterministic per (subscriber, period), so a re-send is recognisably the same message."""
    domain = parseaddr(mail.from_)[1].rpartition("@")[2] or "localhost"
    token = hashlib.sha256(f"{digest.profile.email}|{period}".encode()).hexdigest()[:24]
    return f"<digest.{token}@{domain}>"


def render_parts(templates: Templates, digest: Digest, *, mail: MailSettings) -> tuple[str, str]:
    context = {"digest": digest, "picks": digest.picks, "sections": digest.sections, "base_url": mail.base_url}
    try:
        return templates.text.render(context), templates.html.render(context)
    except jinja2.TemplateError as error:
        raise RenderError(f"cannot render the digest for {digest.profile.email}: {error}") from None


def render_email(
    templates: Templates, digest: Digest, *, mail: MailSettings, period: str, now: datetime
) -> EmailMessage:
    text, html = render_parts(templates, digest, mail=mail)
    message = EmailMessage()
    message["From"] = clean_header(mail.from_)
    message["To"] = formataddr((clean_header(digest.profile.name), digest.profile.email))
    message["Subject"] = clean_header(subject_for(digest))
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(digest, period, mail)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
