"""`/` and `/papers/YYYY-MM-DD`: the public paper list (see `listing`), `/theme.css`, `/logo`.

With `[web] public_papers = false` there is no list: `/` is the sign-up form and
`/papers/...` is not found. Pages are the same for every visitor (no form posts from
them), so they are kept with their day and may be cached by browsers for a few minutes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from functools import partial
from urllib.parse import urlencode

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from digestd.errors import InputError, NotFoundError
from digestd.web.context import Web
from digestd.web.listing import (
    PER_PAGE,
    Day,
    Kept,
    PaperListing,
    check_filters,
    load_day,
    load_days,
    make_day,
    parse_day,
)
from digestd.web.pages import LOGO_TYPES
from digestd.web.signup_routes import signup_page

BROWSER_CACHE = "public, max-age=300"


async def _kept(web: Web, listing: PaperListing, key: object, load: Callable[[Session], object]) -> Kept:
    entry = listing.kept(key)
    if entry is None:
        entry = listing.keep(key, await web.run_db(load))
    return entry


def day_address(day: date, *, category: str = "", query: str = "", page: int = 1) -> str:
    params = {"category": category, "q": query, "page": str(page) if page > 1 else ""}
    given = urlencode({name: value for name, value in params.items() if value})
    return f"/papers/{day.isoformat()}" + (f"?{given}" if given else "")


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1").strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise InputError(f"{text[:20]!r} is not a page number", hint="pages are numbered from 1")
    return int(text)


async def show_day(web: Web, listing: PaperListing, request: Request, day: date | None) -> Response:
    category, query = check_filters(request.query_params.get("category", ""), request.query_params.get("q", ""))
    number = _page_number(request)
    days = (await _kept(web, listing, "days", load_days)).value
    assert isinstance(days, list)
    day = day or (days[0] if days else None)
    if day is None:
        return HTMLResponse(web.pages.render_public("papers.html", listing=None), headers={"Cache-Control": "no-store"})
    if day not in days:
        raise NotFoundError(f"no papers were listed on {day:%-d %B %Y}", hint="see the latest papers on the first page")
    position = days.index(day)
    chosen = day
    entry = await _kept(web, listing, day, lambda s: make_day(chosen, load_day(s, chosen)))
    key = (category, number)
    html = None if query else entry.pages.get(key)
    if html is None:
        kept_day = entry.value
        assert isinstance(kept_day, Day)
        papers = kept_day.select(category=category, query=query)
        pages = max(1, math.ceil(len(papers) / PER_PAGE))
        if number > pages:
            raise NotFoundError(f"there is no page {number} for this day", hint=f"it has {pages}")
        html = web.pages.render_public(
            "papers.html",
            listing=kept_day,
            papers=papers[(number - 1) * PER_PAGE : number * PER_PAGE],
            matched=len(papers),
            category=category,
            query=query,
            page=number,
            pages=pages,
            newer=days[position - 1] if position > 0 else None,
            older=days[position + 1] if position + 1 < len(days) else None,
            latest=position == 0,
            page_url=partial(_page_address, day, category, query),
        )
        if not query:  # searches are too many to keep
            entry.pages[key] = html
    return HTMLResponse(html, headers={"Cache-Control": BROWSER_CACHE})


def _page_address(day: date, category: str, query: str, page: int) -> str:
    return day_address(day, category=category, query=query, page=page)


async def front_page(web: Web, listing: PaperListing, request: Request) -> Response:
    if not web.settings.web.public_papers:
        return await signup_page(web, request)
    return await show_day(web, listing, request, None)


async def day_page(web: Web, listing: PaperListing, request: Request) -> Response:
    if not web.settings.web.public_papers:
        raise NotFoundError("there is no page at this address")
    return await show_day(web, listing, request, parse_day(request.path_params["day"]))


async def theme(web: Web, request: Request) -> Response:
    return Response(web.pages.site.theme_css, media_type="text/css", headers={"Cache-Control": BROWSER_CACHE})


async def logo(web: Web, request: Request) -> Response:
    path = web.pages.site.logo_file
    if path is None or not path.is_file():
        raise NotFoundError("there is no logo")
    return FileResponse(path, media_type=LOGO_TYPES[path.suffix.lower()], headers={"Cache-Control": BROWSER_CACHE})


def paper_routes(web: Web, listing: PaperListing) -> list[Route]:
    return [
        Route("/", partial(front_page, web, listing), methods=["GET"]),
        Route("/papers/{day}", partial(day_page, web, listing), methods=["GET"]),
        Route("/theme.css", partial(theme, web), methods=["GET"]),
        Route("/logo", partial(logo, web), methods=["GET"]),
    ]
