"""The links in every digest: `/manage/<token>`, `/unsubscribe/<token>`, `/rate/<token>`.

Tokens come from `digestd.mail.tokens` (signed with the subscriber's link key, no expiry)
and are checked by `signup.check_link`. GET never changes anything; the forms POST back to
the same URL. `POST /unsubscribe/<token>` is RFC 8058 one-click: body
`List-Unsubscribe=One-Click`, no cookie or CSRF field, answers 200 without a redirect and
without any other link.
"""

from __future__ import annotations

import logging
from functools import partial

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digestd.errors import InputError, NotFoundError
from digestd.mail.tokens import MANAGE, RATE, UNSUBSCRIBE, Token, TokenError
from digestd.models import Paper
from digestd.web.context import CSRF_FIELD, Web
from digestd.web.forms import ProfileForm, read_profile_form
from digestd.web.manage import ACTIONS, ManageView, change_status, load_manage_view, save_profile
from digestd.web.signup import check_link, save_rating, unsubscribe

log = logging.getLogger(__name__)

DONE_MESSAGES = {
    "save": "Your interests and schedule are saved.",
    "pause": "Your digest is paused. Resume it whenever you like.",
    "resume": "Your digest is active again.",
    "unsubscribe": "You are unsubscribed and will get no more digests.",
}


def _manage_page(
    web: Web, request: Request, view: ManageView, *, error: str | None = None, form: ProfileForm | None = None
) -> Response:
    """The page; after an error, with the `form` as the visitor sent it."""
    done = None if error else DONE_MESSAGES.get(request.query_params.get("done", ""))
    status = 400 if error else 200
    return web.page(
        request,
        "manage.html",
        status=status,
        view=view,
        form=form or view.form,
        error=error,
        done=done,
        archive_url=web.link("archive", view.archive_token),
        feed_url=web.link("feed", f"{view.archive_token}.atom"),
        uses_forms=True,
    )


def _load_view(session: Session, web: Web, text: str) -> ManageView:
    token = check_link(session, web.links, text, kind=MANAGE, now=web.now())
    return load_manage_view(session, token.subscriber_id, web.links)


async def manage_page(web: Web, request: Request) -> Response:
    text = request.path_params["token"]
    return _manage_page(web, request, await web.run_db(lambda s: _load_view(s, web, text)))


async def manage(web: Web, request: Request) -> Response:
    data = await request.form(max_files=0, max_fields=200)
    if not web.csrf_ok(request, data.get(CSRF_FIELD)):
        return web.csrf_failed(request)
    text, now = request.path_params["token"], web.now()
    action = str(data.get("action", ""))
    if action not in ACTIONS:
        raise InputError("unknown action", hint="use the buttons on the page")

    def act(session: Session, form: ProfileForm | None) -> int:
        sid = check_link(session, web.links, text, kind=MANAGE, now=now).subscriber_id
        if form is not None:
            save_profile(session, sid, form, now=now)
        else:
            change_status(session, sid, action, now=now)
        return sid

    form = read_profile_form(data, with_email=False) if action == "save" else None
    try:
        sid = await web.run_db(lambda s: act(s, form), immediate=True)
    except TokenError:  # a bad link is its own page, not a form error
        raise
    except InputError as error:  # the page again, with what the visitor typed
        view = await web.run_db(lambda s: _load_view(s, web, text))
        return _manage_page(web, request, view, error=error.message, form=form)
    log.info("manage: subscriber %s did %s", sid, action)
    return RedirectResponse(f"/manage/{text}?done={action}", status_code=303)


def _unsubscribe(session: Session, web: Web, text: str, *, change: bool) -> bool:
    """Check an unsubscribe link (and with `change`, unsubscribe); False if its subscriber is gone."""
    now = web.now()
    try:
        token = check_link(session, web.links, text, kind=UNSUBSCRIBE, now=now)
    except NotFoundError:
        return False
    if change:
        unsubscribe(session, token.subscriber_id, now=now)
        log.info("unsubscribe: subscriber %s", token.subscriber_id)
    return True


async def unsubscribe_page(web: Web, request: Request) -> Response:
    text = request.path_params["token"]
    if await web.run_db(lambda s: _unsubscribe(s, web, text, change=False)):
        return web.page(request, "unsubscribe.html")
    return web.page(request, "unsubscribed.html")  # nothing left to stop


async def unsubscribe_now(web: Web, request: Request) -> Response:
    """RFC 8058 one-click. The answer links nowhere: the token in a List-Unsubscribe header
    is posted by mail providers and may be seen by more eyes than the digest itself."""
    data = await request.form(max_files=0, max_fields=10)
    if data.get("List-Unsubscribe") != "One-Click":
        raise InputError("this request is not a one-click unsubscribe", hint="use the button on the page")
    text = request.path_params["token"]
    await web.run_db(lambda s: _unsubscribe(s, web, text, change=True), immediate=True)
    return web.page(request, "unsubscribed.html")


def _load_rating_target(session: Session, web: Web, text: str) -> tuple[Token, str | None]:
    """The rate link's token and the paper's title (None if we do not have it)."""
    token = check_link(session, web.links, text, kind=RATE, now=web.now())
    paper = session.get(Paper, token.paper_id)
    return token, paper.title if paper else None


async def rate_page(web: Web, request: Request) -> Response:
    text = request.path_params["token"]
    token, title = await web.run_db(lambda s: _load_rating_target(s, web, text))
    return web.page(request, "rate.html", token=token, title=title, uses_forms=True)


async def rate(web: Web, request: Request) -> Response:
    data = await request.form(max_files=0, max_fields=10)
    if not web.csrf_ok(request, data.get(CSRF_FIELD)):
        return web.csrf_failed(request)
    text, now = request.path_params["token"], web.now()

    def record(session: Session) -> tuple[Token, str | None]:
        token, title = _load_rating_target(session, web, text)
        assert token.paper_id is not None and token.value is not None
        save_rating(session, token.subscriber_id, token.paper_id, token.value, now=now)
        return token, title

    token, title = await web.run_db(record, immediate=True)
    log.info("rate: subscriber %s rated a paper %+d", token.subscriber_id, token.value or 0)
    # No link to the manage page: a rating link also sits on a digest's web page, which a
    # feed reader may hold (`digest_routes`), and must not open the profile.
    return web.page(request, "rated.html", token=token, title=title)


def link_routes(web: Web) -> list[Route]:
    return [
        Route("/manage/{token}", partial(manage_page, web), methods=["GET"]),
        Route("/manage/{token}", partial(manage, web), methods=["POST"]),
        Route("/unsubscribe/{token}", partial(unsubscribe_page, web), methods=["GET"]),
        Route("/unsubscribe/{token}", partial(unsubscribe_now, web), methods=["POST"]),
        Route("/rate/{token}", partial(rate_page, web), methods=["GET"]),
        Route("/rate/{token}", partial(rate, web), methods=["POST"]),
    ]
