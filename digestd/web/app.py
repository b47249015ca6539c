"""The web app: `create_app(settings, engine, send_message=...)` builds a Starlette app.

Nothing is configured at import time; all state (signers, rate-limit buckets, the
template environment) lives in the `Web` object the factory makes. Errors become pages:
a bad or expired link is 400, an unknown one 404, a mail failure 503; never a traceback.
Every response carries a strict Content-Security-Policy and `Referrer-Policy: no-referrer`
(the URLs hold tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digestd.config import Settings
from digestd.errors import ConfigError, DeliveryError, InputError, NotFoundError
from digestd.mail.tokens import TokenError, TokenSigner, check_secret_key
from digestd.web.confirmation import ConfirmSigner
from digestd.web.context import Web
from digestd.web.csrf import CsrfGuard
from digestd.web.digest_routes import digest_routes
from digestd.web.hook_routes import hook_routes
from digestd.web.limits import RateLimiter
from digestd.web.link_routes import link_routes
from digestd.web.listing import PaperListing
from digestd.web.mailer import SendMessage
from digestd.web.pages import Pages, list_timezones, make_environment, make_site, shipped_web_dir
from digestd.web.paper_routes import paper_routes
from digestd.web.signup_queue import RETRY_SECONDS, SignupSender
from digestd.web.signup_routes import signup_routes

log = logging.getLogger(__name__)

PAGES = (
    "papers.html _example_digest.html index.html check_inbox.html confirm.html confirmed.html manage.html "
    "unsubscribe.html unsubscribed.html rate.html rated.html error.html confirm_email.txt already_email.txt "
    "view.html archive.html feed_entry.html"
).split()
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]


MAX_BODY_BYTES = 64 * 1024  # the largest form is a few kilobytes


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every HTTP response and refuses bodies over `MAX_BODY_BYTES`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise HTTPException(413, "The form sent too much data.")
            return message

        await self.app(scope, receive_limited, send_with_headers)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_web(
    settings: Settings, engine: Engine, *, send_message: SendMessage, now: Callable[[], datetime] = _utc_now
) -> Web:
    """The handlers' shared state, checked: a secret key, sane limits, templates that compile."""
    key = check_secret_key(settings.secret_key)
    web_settings = settings.web
    for name in ("subscribe_per_ip_per_hour", "mails_per_address_per_day"):
        if getattr(web_settings, name) <= 0:
            raise ConfigError(f"web.{name} = {getattr(web_settings, name)!r} is not allowed: must be greater than 0")
    csrf = CsrfGuard(key, secure_cookie=settings.mail.base_url.startswith("https://"))
    categories = [c.strip() for c in web_settings.categories.split(",") if c.strip()]
    pages = Pages(make_environment(settings.mail), csrf, categories, list_timezones(), make_site(web_settings))
    pages.check_templates(PAGES)
    return Web(
        settings=settings,
        engine=engine,
        pages=pages,
        links=TokenSigner(key),
        confirms=ConfirmSigner(key),
        csrf=csrf,
        ip_limit=RateLimiter(web_settings.subscribe_per_ip_per_hour, 3600.0),
        address_limit=RateLimiter(web_settings.mails_per_address_per_day, 86400.0),
        send_message=send_message,
        now=now,
    )


def _error_handlers(web: Web) -> dict[object, Callable[..., object]]:
    async def bad_link(request: Request, error: Exception) -> Response:
        assert isinstance(error, TokenError)
        return web.error_page(request, 400, "This link does not work", error.message, error.hint)

    async def bad_input(request: Request, error: Exception) -> Response:
        assert isinstance(error, InputError)
        return web.error_page(request, 400, "Something is not right", error.message, error.hint)

    async def not_found(request: Request, error: Exception) -> Response:
        message = error.message if isinstance(error, NotFoundError) else "There is no page at this address."
        return web.error_page(request, 404, "Not found", message, "Check the link, or use the newest email from us.")

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if error.status_code == 404:
            return await not_found(request, error)
        return web.error_page(request, error.status_code, "Request not allowed", str(error.detail))

    async def mail_failed(request: Request, error: Exception) -> Response:
        log.error("web: mail could not be sent: %s", error)
        return web.error_page(
            request,
            503,
            "We could not send the email",
            "Our mail server did not accept it.",
            "Please try again in a few minutes.",
        )

    async def server_error(request: Request, error: Exception) -> Response:
        log.exception("web: unexpected error on %s %s", request.method, request.url.path.split("/")[1])
        return web.error_page(
            request, 500, "Something went wrong", "The server could not handle this request.", "Please try again later."
        )

    return {
        TokenError: bad_link,
        InputError: bad_input,
        NotFoundError: not_found,
        HTTPException: http_error,
        DeliveryError: mail_failed,
        500: server_error,
    }


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    send_message: SendMessage,
    now: Callable[[], datetime] = _utc_now,
    retry_seconds: Sequence[float] = RETRY_SECONDS,
    paper_listing: PaperListing | None = None,
) -> Starlette:
    """The ASGI app: the public paper list, sign-up, confirm, manage, unsubscribe and rate pages,
    past digests (view, archive, Atom feed), the bounce webhook, plus `/static`.
    While it runs (its lifespan), a `SignupSender` mails the queued sign-ups. `paper_listing`
    keeps the public list's days (the benchmark passes one that keeps nothing)."""
    web = make_web(settings, engine, send_message=send_message, now=now)
    sender = SignupSender(web, retry_seconds=retry_seconds)
    web.wake_sender = sender.wake

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        sending = asyncio.create_task(sender.run(stop))
        try:
            yield
        finally:
            stop.set()  # the mail in flight is finished, the rest kept for the next start
            await sending

    routes = [
        *paper_routes(web, paper_listing or PaperListing()),
        *signup_routes(web),
        *link_routes(web),
        *digest_routes(web),
        *hook_routes(web),
        Mount("/static", StaticFiles(directory=shipped_web_dir() / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers=_error_handlers(web), lifespan=lifespan)  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)
    app.state.web = web
    return app
