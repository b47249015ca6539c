"""The links in every digest: `/manage/<token>`, `/unsubscribe/<token>`, `/rate/<token>`.

Tokens come from `digestd.mail.tokens` (signed, no expiry). GET never changes anything; the
forms POST back to the same URL. `POST /unsubscribe/<token>` is RFC 8058 one-click: body
`List-Unsubscribe=One-Click`, no cookie or CSRF field, answers 200 without a redirect.
"""

from __future__ import annotations

import logging
from functools import partial

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digestd.errors import InputError, NotFoundError
from digestd.mail.tokens import MANAGE, RATE, UNSUBSCRIBE, Token
from digestd.models import Paper, Subscriber
from digestd.web.context import CSRF_FIELD, Web
from digestd.web.forms import read_profile_form
from digestd.web.manage import ACTIONS, ManageView, change_status, load_manage_view, save_profile
from digestd.web.signup import save_rating, unsubscribe

log = logging.getLogger(__name__)

DONE_MESSAGES = {
    "save": "Your interests and schedule are saved.",
    "pause": "Your digest is paused. Resume it whenever you like.",
    "resume": "Your digest is active again.",
    "unsubscribe": "You are unsubscribed and will get no more digests.",
}


def _manage_page(web: Web, request: Request, view: ManageView, *, error: str | None = None) -> Response:
    done = DONE_MESSAGES.get(request.query_params.get("done", ""))
    status = 400 if error else 200
    return web.page(
        request, "manage.html", status=status, view=view, form=view.form, error=error, done=done, uses_forms=True
    )


async def manage_page(web: Web, request: Request) -> Response:
    token = web.links.verify(request.path_params["token"], kind=MANAGE)
    view = await web.run_db(lambda s: load_manage_view(s, token.subscriber_id))
    return _manage_page(web, request, view)


async def manage(web: Web, request: Request) -> Response:
    data = await request.form(max_files=0, max_fields=200)
    if not web.csrf_ok(request, data.get(CSRF_FIELD)):
        return web.csrf_failed(request)
    token = web.links.verify(request.path_params["token"], kind=MANAGE)
    action, now, sid = str(data.get("action", "")), web.now(), token.subscriber_id
    if action not in ACTIONS:
        raise InputError("unknown action", hint="use the buttons on the page")
    try:
        if action == "save":
            form = read_profile_form(data, with_email=False)
            await web.run_db(lambda s: save_profile(s, sid, form, now=now), immediate=True)
        else:
            await web.run_db(lambda s: change_status(s, sid, action, now=now), immediate=True)
    except InputError as error:
        view = await web.run_db(lambda s: load_manage_view(s, sid))
        return _manage_page(web, request, view, error=error.message)
    log.info("manage: subscriber %s did %s", sid, action)
    return RedirectResponse(f"/manage/{web.links.sign_manage(sid)}?done={action}", status_code=303)


async def unsubscribe_page(web: Web, request: Request) -> Response:
    web.links.verify(request.path_params["token"], kind=UNSUBSCRIBE)
    return web.page(request, "unsubscribe.html")


async def unsubscribe_now(web: Web, request: Request) -> Response:
    data = await request.form(max_files=0, max_fields=10)
    if data.get("List-Unsubscribe") != "One-Click":
        raise InputError("this request is not a one-click unsubscribe", hint="use the button on the page")
    token = web.links.verify(request.path_params["token"], kind=UNSUBSCRIBE)
    now = web.now()
    known = await web.run_db(lambda s: unsubscribe(s, token.subscriber_id, now=now), immediate=True)
    log.info("unsubscribe: subscriber %s (%s)", token.subscriber_id, "done" if known else "unknown")
    manage_url = web.link("manage", web.links.sign_manage(token.subscriber_id)) if known else None
    return web.page(request, "unsubscribed.html", manage_url=manage_url)


def _load_rating_target(session: Session, token: Token) -> str | None:
    """The paper's title (None if we do not have it); `NotFoundError` if the subscriber is gone."""
    if session.get(Subscriber, token.subscriber_id) is None:
        raise NotFoundError("there is no subscription for this link")
    paper = session.get(Paper, token.paper_id)
    return paper.title if paper else None


async def rate_page(web: Web, request: Request) -> Response:
    token = web.links.verify(request.path_params["token"], kind=RATE)
    title = await web.run_db(lambda s: _load_rating_target(s, token))
    return web.page(request, "rate.html", token=token, title=title, uses_forms=True)


async def rate(web: Web, request: Request) -> Response:
    data = await request.form(max_files=0, max_fields=10)
    if not web.csrf_ok(request, data.get(CSRF_FIELD)):
        return web.csrf_failed(request)
    token = web.links.verify(request.path_params["token"], kind=RATE)
    assert token.paper_id is not None and token.value is not None
    paper_id, value, now = token.paper_id, token.value, web.now()

    def record(session: Session) -> str | None:
        title = _load_rating_target(session, token)
        save_rating(session, token.subscriber_id, paper_id, value, now=now)
        return title

    title = await web.run_db(record, immediate=True)
    log.info("rate: subscriber %s rated a paper %+d", token.subscriber_id, value)
    manage_url = web.link("manage", web.links.sign_manage(token.subscriber_id))
    return web.page(request, "rated.html", token=token, title=title, manage_url=manage_url)


def link_routes(web: Web) -> list[Route]:
    return [
        Route("/manage/{token}", partial(manage_page, web), methods=["GET"]),
        Route("/manage/{token}", partial(manage, web), methods=["POST"]),
        Route("/unsubscribe/{token}", partial(unsubscribe_page, web), methods=["GET"]),
        Route("/unsubscribe/{token}", partial(unsubscribe_now, web), methods=["POST"]),
        Route("/rate/{token}", partial(rate_page, web), methods=["GET"]),
        Route("/rate/{token}", partial(rate, web), methods=["POST"]),
    ]
