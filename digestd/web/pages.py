"""Jinja2 pages and mail bodies for the web, from `templates/web/`.

HTML autoescapes and every template runs with `StrictUndefined`, in the same sandbox as
the email templates (see `mail.templates`). `Pages.render` also
hands each page the CSRF field for its forms, setting the cookie it is tied to when the
browser has none yet. An operator's `mail.templates_dir/web/` overrides single files.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digestd.config import FREQUENCIES, WEEKDAYS, MailSettings
from digestd.errors import RenderError
from digestd.mail.render import Sandbox, SandboxedLoader, templates_dir
from digestd.web.csrf import FIELD_NAME, CsrfGuard, cookie_header

DAY_NAMES = dict(
    zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True)
)


def shipped_web_dir() -> Path:
    return templates_dir(MailSettings()) / "web"


def make_environment(mail: MailSettings) -> jinja2.Environment:
    folders = [shipped_web_dir()]
    if mail.templates_dir:
        folders.insert(0, Path(mail.templates_dir).expanduser() / "web")
    return Sandbox(
        loader=SandboxedLoader([str(folder) for folder in folders]),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def list_timezones() -> list[str]:
    return sorted(name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC")


@dataclass
class Pages:
    env: jinja2.Environment
    csrf: CsrfGuard
    categories: list[str]
    timezones: list[str]

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
        return self.env.get_template(template).render(**context)

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
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if fresh and context.get("uses_forms", False):
            response.set_cookie(
                self.csrf.cookie_name, cookie, httponly=True, samesite="lax", secure=self.csrf.secure_cookie, path="/"
            )
        response.headers["Cache-Control"] = "no-store"
        return response
