"""CSRF on the real app: a cookie planted from a sibling domain, plus a field the attacker
fetched for it, does not pass; the field is HMAC(secret, cookie); cross-origin posts are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient
from web_support import Clock, Outbox, csrf_of, make_settings

from digestd.web.app import create_app
from digestd.web.csrf import CsrfGuard

SITE = "http://digest.example.org"
SIBLING = "http://blog.example.org"  # same site, another origin: it can set cookies for .example.org


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def app(engine: Engine, outbox: Outbox) -> object:
    return create_app(make_settings(base_url=SITE), engine, send_message=outbox, now=Clock())


def client_for(app: object, base_url: str = SITE) -> TestClient:
    return TestClient(app, base_url=base_url)  # type: ignore[arg-type]


def sign_up(email: str = "victim@example.org") -> dict[str, str]:
    return {"email": email, "keywords": "graphs", "frequency": "weekly", "day": "mon", "time": "08:00",
            "timezone": "UTC"}  # fmt: skip


@pytest.fixture
def attacker(app: object) -> Iterator[tuple[str, str]]:
    """What an attacker gets by visiting the site: a cookie and the field for it."""
    with client_for(app) as client:
        field = csrf_of(client)
        yield client.cookies["digestd_csrf"], field


def post(app: object, cookie_header: str, field: str, **headers: str) -> int:
    with client_for(app) as client:
        response = client.post(
            "/subscribe", data={"csrf": field, **sign_up()}, headers={"cookie": cookie_header, **headers}
        )
        return response.status_code


def test_a_planted_cookie_and_its_fetched_field_are_refused(
    app: object, attacker: tuple[str, str], outbox: Outbox
) -> None:
    planted, field = attacker
    with client_for(app) as victim:
        csrf_of(victim)
        own = victim.cookies["digestd_csrf"]
    from_sibling = {"origin": SIBLING, "sec-fetch-site": "same-site"}
    # the browser sends its own cookie and the planted one (set later, for the parent domain)
    assert post(app, f"digestd_csrf={own}; digestd_csrf={planted}", field, **from_sibling) == 403
    # a browser that had no cookie of its own yet
    assert post(app, f"digestd_csrf={planted}", field, **from_sibling) == 403
    assert post(app, f"digestd_csrf={planted}", field, origin=SIBLING) == 403  # http: no Sec-Fetch-Site
    assert post(app, f"digestd_csrf={planted}", field, origin="null") == 403
    assert post(app, f"digestd_csrf={planted}", field, origin="http://digest.example.org:bad") == 403
    # an old browser that sends no Origin: two different cookies are refused all the same
    assert post(app, f"digestd_csrf={own}; digestd_csrf={planted}", field) == 403
    assert outbox.messages == []


def test_the_field_must_be_the_one_made_for_this_cookie(app: object, attacker: tuple[str, str]) -> None:
    planted, field = attacker
    with client_for(app) as victim:
        csrf_of(victim)
        own = victim.cookies["digestd_csrf"]
    assert post(app, f"digestd_csrf={own}", field) == 403  # the attacker's field, the victim's cookie
    assert post(app, f"digestd_csrf={own}", CsrfGuard("another secret", secure_cookie=False).field_for(own)) == 403
    same_origin = {"origin": SITE, "sec-fetch-site": "same-origin"}
    assert post(app, f"digestd_csrf={planted}", field, **same_origin) == 200  # a real form post still works


def test_on_https_the_cookie_cannot_be_set_by_another_host(engine: Engine) -> None:
    app = create_app(make_settings(base_url="https://digest.example.org"), engine, send_message=Outbox(), now=Clock())
    with client_for(app, "https://digest.example.org") as client:
        page = client.get("/subscribe")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-digestd_csrf=") and "Secure" in cookie and "Domain" not in cookie
        data = {"csrf": csrf_of(client), **sign_up()}
        assert client.post("/subscribe", data=data).status_code == 200
