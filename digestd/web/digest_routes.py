"""Past digests on the web: `/view/<token>` (one digest, the email's "View in your browser"),
`/archive/<token>` (the list) and `/feed/<token>.atom` (the same as an Atom feed).

They only show. A view page has the digest's own rating links, built as the email builds
them (`mail.render.section_views`). The archive token serves the archive and the feed, and
opens nothing else: a feed reader holding it cannot change the profile or unsubscribe.
"""

from __future__ import annotations

from functools import partial

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digestd.mail.message import list_name
from digestd.mail.paper_view import format_day, make_paper_view
from digestd.mail.render import ABSTRACT_LIMITS, SectionView, section_views, subject_for
from digestd.mail.tokens import ARCHIVE, VIEW, Token
from digestd.models import Subscriber
from digestd.records import Digest
from digestd.web.context import Web
from digestd.web.digests import PastDigest, as_utc, load_digest, load_digests, load_past_digests
from digestd.web.feed import FeedEntry, build_atom_feed
from digestd.web.signup import check_link


def _subscriber(session: Session, web: Web, text: str, kind: str) -> tuple[Subscriber, Token]:
    token = check_link(session, web.links, text, kind=kind, now=web.now())
    subscriber = session.get(Subscriber, token.subscriber_id)
    assert subscriber is not None  # check_link found it
    session.expunge(subscriber)
    return subscriber, token


def _sections(web: Web, digest: Digest) -> list[SectionView]:
    base = web.settings.mail.base_url.rstrip("/")
    return section_views(digest, web.links, base, lambda paper: make_paper_view(paper, ABSTRACT_LIMITS[0]))


def _archive_url(web: Web, subscriber: Subscriber) -> str:
    assert subscriber.id is not None
    return web.link("archive", web.links.sign_archive(subscriber.id, subscriber.link_key))


def _view_url(web: Web, subscriber: Subscriber, period: str) -> str:
    assert subscriber.id is not None
    return web.link("view", web.links.sign_view(subscriber.id, subscriber.link_key, period))


async def view_page(web: Web, request: Request) -> Response:
    text = request.path_params["token"]

    def load(session: Session) -> tuple[Subscriber, Digest, str]:
        subscriber, token = _subscriber(session, web, text, VIEW)
        assert token.period is not None  # every view token names one
        return subscriber, load_digest(session, subscriber, token.period), token.period

    subscriber, digest, period = await web.run_db(load)
    sections = _sections(web, digest)
    count = sum(len(section.picks) for section in sections)
    return web.page(
        request,
        "view.html",
        heading=f"Your paper digest, {format_day(period)}",
        count=count,
        sent_at=digest.generated_at,
        sections=sections,
        archive_url=_archive_url(web, subscriber),
    )


async def archive_page(web: Web, request: Request) -> Response:
    text = request.path_params["token"]

    def load(session: Session) -> tuple[Subscriber, list[PastDigest]]:
        subscriber, _ = _subscriber(session, web, text, ARCHIVE)
        assert subscriber.id is not None
        return subscriber, load_past_digests(session, subscriber.id)

    subscriber, past = await web.run_db(load)
    digests = [(format_day(d.period), d.papers, _view_url(web, subscriber, d.period)) for d in past]
    return web.page(request, "archive.html", digests=digests, feed_url=web.link("feed", f"{text}.atom"))


async def feed(web: Web, request: Request) -> Response:
    text = request.path_params["token"]

    def load(session: Session) -> tuple[Subscriber, list[tuple[str, Digest]]]:
        subscriber, _ = _subscriber(session, web, text, ARCHIVE)
        return subscriber, load_digests(session, subscriber)

    subscriber, digests = await web.run_db(load)
    entries = [
        FeedEntry(
            period=period,
            digest=digest,
            title=subject_for(digest, period),
            view_url=_view_url(web, subscriber, period),
            content_html=web.pages.render_text("feed_entry.html", sections=_sections(web, digest)),
        )
        for period, digest in digests
    ]
    body = build_atom_feed(
        title=f"{list_name(web.settings.mail)}: your digests",
        author=list_name(web.settings.mail),
        base_url=web.settings.mail.base_url.rstrip("/"),
        link_key=subscriber.link_key,
        feed_url=web.link("feed", f"{text}.atom"),
        archive_url=_archive_url(web, subscriber),
        entries=entries,
        updated=as_utc(subscriber.created_at),
    )
    return Response(body, media_type="application/atom+xml", headers={"Cache-Control": "private, max-age=300"})


def digest_routes(web: Web) -> list[Route]:
    return [
        Route("/view/{token}", partial(view_page, web), methods=["GET"]),
        Route("/archive/{token}", partial(archive_page, web), methods=["GET"]),
        Route("/feed/{token}.atom", partial(feed, web), methods=["GET"]),
    ]
