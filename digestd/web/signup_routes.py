"""`/subscribe` (the sign-up form; also `/` when `[web] public_papers = false`) and `/confirm/<token>`: double opt-in.

`POST /subscribe` always ends on the same "check your inbox" page after the same work,
whether the address is new, pending, already subscribed or suppressed: it only queues the
form (`signup_queue`), and the sender records it and mails after the answer has gone. `GET
/confirm/<token>` shows a button and changes nothing (mail scanners fetch links); the
button's POST activates the subscription.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digestd.errors import InputError
from digestd.subscribers import check_input, check_interests
from digestd.web.context import CSRF_FIELD, Web
from digestd.web.forms import ProfileForm, default_form, read_profile_form, to_input
from digestd.web.signup import check_confirmation as check_confirmation_link
from digestd.web.signup import confirm_signup
from digestd.web.signup_queue import queue_signup

log = logging.getLogger(__name__)
MAX_FIELDS = 200


def show_signup_form(web: Web, request: Request, form: ProfileForm, *, error: str | None = None) -> Response:
    status = 400 if error else 200
    return web.page(request, "index.html", status=status, form=form, error=error, uses_forms=True)


def rate_limited(web: Web, request: Request) -> Response:
    response = web.error_page(
        request,
        429,
        "Too many requests",
        "We received too many sign-up requests from your network or for this address.",
        "Please wait an hour and try again. If you already signed up, look for our email (and in your spam folder).",
    )
    response.headers["Retry-After"] = "3600"
    return response


async def signup_page(web: Web, request: Request) -> Response:
    return show_signup_form(web, request, default_form(web.settings.digest))


async def subscribe(web: Web, request: Request) -> Response:
    data = await request.form(max_files=0, max_fields=MAX_FIELDS)
    if not web.csrf_ok(request, data.get(CSRF_FIELD)):
        return web.csrf_failed(request)
    now = web.now()
    if not web.ip_limit.allow(web.client_address(request), now.timestamp()):
        return rate_limited(web, request)
    form = ProfileForm()
    try:
        form = read_profile_form(data, with_email=True)
        checked = check_input(to_input(form, email=form.email, with_seeds=False))
        check_interests(checked)
    except InputError as error:
        return show_signup_form(web, request, form, error=error.message)
    if not web.address_limit.allow(checked.email, now.timestamp()):
        return rate_limited(web, request)
    await web.run_db(lambda s: queue_signup(s, checked))  # the sender does the rest, after we answer
    web.wake_sender()
    return web.page(request, "check_inbox.html", email=checked.email)


async def confirm_page(web: Web, request: Request) -> Response:
    token = web.confirms.verify(request.path_params["token"])
    now = web.now()
    await web.run_db(lambda s: check_confirmation_link(s, token, now=now))
    return web.page(request, "confirm.html", uses_forms=True)


async def confirm(web: Web, request: Request) -> Response:
    data = await request.form(max_files=0, max_fields=10)
    if not web.csrf_ok(request, data.get(CSRF_FIELD)):
        return web.csrf_failed(request)
    token = web.confirms.verify(request.path_params["token"])
    now = web.now()

    def activate(session: Session) -> tuple[int, str, str]:
        subscriber = confirm_signup(session, token, now=now)
        assert subscriber.id is not None
        return subscriber.id, subscriber.link_key, describe_due(subscriber.next_due_at, subscriber.timezone)

    subscriber_id, link_key, first_digest = await web.run_db(activate, immediate=True)
    log.info("sign-up: subscriber %s confirmed", subscriber_id)
    manage_url = web.link("manage", web.links.sign_manage(subscriber_id, link_key))
    return web.page(request, "confirmed.html", manage_url=manage_url, first_digest=first_digest)


def describe_due(due: datetime | None, timezone: str) -> str:
    """`Monday 7 December 2026 at 08:00 (Europe/Berlin time)`, or "" when nothing is due."""
    if due is None:
        return ""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    local = (due if due.tzinfo else due.replace(tzinfo=UTC)).astimezone(zone)
    return f"{local:%A %-d %B %Y at %H:%M} ({timezone} time)"


def signup_routes(web: Web) -> list[Route]:
    return [
        Route("/subscribe", partial(signup_page, web), methods=["GET"]),
        Route("/subscribe", partial(subscribe, web), methods=["POST"]),
        Route("/confirm/{token}", partial(confirm_page, web), methods=["GET"]),
        Route("/confirm/{token}", partial(confirm, web), methods=["POST"]),
    ]
