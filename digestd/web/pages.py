"""Jinja2 pages and mail bodies for the web, from `templates/web/`.

HTML autoescapes and every template runs with `StrictUndefined`, in the same sandbox as
the email templates (see `mail.templates`). `Pages.render` also
hands each page the CSRF field for its forms, setting the cookie it is tied to when the
browser has none yet. An operator's `mail.templates_dir/web/` overrides single files.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digestd.categories import category_name
from digestd.config import FREQUENCIES, WEEKDAYS, MailSettings, WebSettings, check_accent_color, site_name
from digestd.errors import ConfigError, RenderError
from digestd.mail.render import Sandbox, SandboxedLoader, templates_dir
from digestd.web.csrf import FIELD_NAME, CsrfGuard, cookie_header

DAY_NAMES = dict(
    zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True)
)


LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True)
class Site:
    """The face of the pages and emails: `[web] site_name`, `logo_file`, `accent_color`."""

    name: str = "Paper digest"
    logo_file: Path | None = None
    accent: str = "#1a5fb4"
    public_papers: bool = True

    @property
    def logo_url(self) -> str:
        return "/logo" if self.logo_file else ""

    @property
    def theme_css(self) -> str:
        return f":root {{ --accent: {self.accent}; }}\n"


def make_site(web: WebSettings) -> Site:
    """The checked face: a usable colour, a logo file that exists and is an image."""
    name = site_name(web)
    check_accent_color(web.accent_color)
    logo = Path(web.logo_file).expanduser() if web.logo_file else None
    if logo is not None:
        if logo.suffix.lower() not in LOGO_TYPES:
            raise ConfigError(f"web.logo_file = {web.logo_file!r}: use an .svg, .png or .jpg file")
        if not logo.is_file():
            raise ConfigError(f"web.logo_file = {web.logo_file!r} does not exist", hint="give an image file's path")
    return Site(name=name, logo_file=logo, accent=web.accent_color, public_papers=web.public_papers)


def shipped_web_dir() -> Path:
    return templates_dir(MailSettings()) / "web"


def make_environment(mail: MailSettings) -> jinja2.Environment:
    folders = [shipped_web_dir()]
    if mail.templates_dir:
        folders.insert(0, Path(mail.templates_dir).expanduser() / "web")
    env = Sandbox(
        loader=SandboxedLoader([str(folder) for folder in folders]),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["category_name"] = category_name
    env.filters["sentence"] = as_sentence
    return env


def as_sentence(text: str) -> str:
    """`this link is damaged` → `This link is damaged.`: library messages are fragments."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def list_timezones() -> list[str]:
    return sorted(name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC")


@dataclass
class Pages:
    env: jinja2.Environment
    csrf: CsrfGuard
    categories: list[str]
    timezones: list[str]
    site: Site = field(default_factory=Site)

    def check_templates(self, names: list[str]) -> None:
        """Compile the templates now, so a broken one fails at start-up with its line."""
        for name in names:
            try:
                self.env.get_template(name)
            except jinja2.TemplateSyntaxError as error:
                raise RenderError(f"template {error.filename}, line {error.lineno}: {error.message}") from None
            except jinja2.TemplateNotFound as error:
                raise RenderError(f"template web/{error.name} not found") from None

    def render_text(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(site=self.site, **context)

    def render_public(self, template: str, **context: Any) -> str:
        """A page without forms that post, the same for every visitor (so it can be kept)."""
        return self.env.get_template(template).render(site=self.site, day_names=DAY_NAMES, **context)

    def render(self, request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        """An HTML page; pages with forms get `csrf_field` and the cookie behind it."""
        cookie = self.csrf.usable_cookie(cookie_header(request.headers))
        fresh = cookie is None
        cookie = cookie or self.csrf.new_cookie_value()
        html = self.env.get_template(template).render(
            csrf_name=FIELD_NAME,
            csrf_field=self.csrf.field_for(cookie),
            frequencies=FREQUENCIES,
            day_names=DAY_NAMES,
            categories=self.categories,
            timezones=self.timezones,
            site=self.site,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if fresh and context.get("uses_forms", False):
            response.set_cookie(
                self.csrf.cookie_name, cookie, httponly=True, samesite="lax", secure=self.csrf.secure_cookie, path="/"
            )
        response.headers["Cache-Control"] = "no-store"
        return response
