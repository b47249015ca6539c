"""What every request handler gets: settings, database, signers, limits and the mail seam."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from digestd.config import Settings
from digestd.mail.tokens import TokenSigner
from digestd.store import open_session
from digestd.web.confirmation import ConfirmSigner
from digestd.web.csrf import FIELD_NAME, CsrfGuard, cookie_header, origin_of
from digestd.web.limits import RateLimiter, client_key
from digestd.web.mailer import SendMessage
from digestd.web.pages import Pages

T = TypeVar("T")


@dataclass
class Web:
    settings: Settings
    engine: Engine
    pages: Pages
    links: TokenSigner
    confirms: ConfirmSigner
    csrf: CsrfGuard
    ip_limit: RateLimiter
    address_limit: RateLimiter
    send_message: SendMessage
    now: Callable[[], datetime]
    wake_sender: Callable[[], None] = lambda: None  # a sign-up was queued (`signup_queue`)

    async def run_db(self, work: Callable[[Session], T], *, immediate: bool = False) -> T:
        """Run `work` in one transaction, in a worker thread (the database driver blocks)."""

        def in_session() -> T:
            with open_session(self.engine, immediate=immediate) as session:
                return work(session)

        return await run_in_threadpool(in_session)

    def link(self, kind: str, token: str) -> str:
        return f"{self.settings.mail.base_url.rstrip('/')}/{kind}/{token}"

    def client_address(self, request: Request) -> str:
        """What sign-ups are limited by: the client's address, or its IPv6 /64."""
        return client_key(request.client.host if request.client else "unknown")

    def csrf_ok(self, request: Request, form_value: object) -> bool:
        """The form was posted from our own pages, with the field made for its one CSRF cookie."""
        value = form_value if isinstance(form_value, str) else None
        own_origins = {origin_of(self.settings.mail.base_url), origin_of(str(request.base_url))}
        if not self.csrf.from_own_pages(request.headers, own_origins):
            return False
        return self.csrf.check(cookie_header(request.headers), value)

    def page(self, request: Request, template: str, *, status: int = 200, **context: object) -> Response:
        return self.pages.render(request, template, status=status, **context)

    def error_page(self, request: Request, status: int, title: str, message: str, hint: str | None = None) -> Response:
        return self.pages.render(request, "error.html", status=status, title=title, message=message, hint=hint)

    def csrf_failed(self, request: Request) -> Response:
        return self.error_page(
            request,
            403,
            "Please try again",
            "This form has expired or your browser did not send its cookie.",
            "Go back, reload the page and submit the form again (cookies must be allowed for this site).",
        )


CSRF_FIELD = FIELD_NAME
