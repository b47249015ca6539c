"""No page answers 500: every link with a damaged or foreign token, every form with huge or
odd input, on every route the web serves, gets a clear 4xx page (or works)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from web_support import SECRET, START, Clock, Outbox, csrf_of, make_settings

from digestd.config import DigestSettings
from digestd.mail.tokens import TokenSigner
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber
from digestd.web.app import create_app

SIGNER = TokenSigner(SECRET)
LINK_ROUTES = ("manage", "unsubscribe", "rate", "confirm", "view", "archive", "feed")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, int, str]]:
    """The app on one database for the module, and its subscriber's id and link key."""
    from digestd.store import make_engine, migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('hardening') / 'digestd.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    with open_session(engine, immediate=True) as session:
        given = SubscriberInput(email="ada@example.org", keywords="graphs")
        ada = add_subscriber(session, given, defaults=DigestSettings(), now=START)
    app = create_app(make_settings(), engine, send_message=Outbox(), now=Clock())
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        assert ada.id is not None
        yield client, ada.id, ada.link_key
    engine.dispose()


def damaged_tokens(subscriber_id: int, link_key: str) -> list[str]:
    good = SIGNER.sign_manage(subscriber_id, link_key)
    return [
        "", "garbage", ".", "..", "a.b.c", "====", "x" * 20_000, "%00", "%ff%fe", "%E2%80%AE", "_w.AAAA",
        good[:-4], good + "A", good.replace(".", ""), good.swapcase(),
        SIGNER.sign_manage(2**31 - 1, link_key), TokenSigner("other").sign_archive(subscriber_id, link_key),
        SIGNER.sign_rate(subscriber_id, link_key, "x" * 3000, 1),
        SIGNER.sign_view(subscriber_id, link_key, "1999-01-01"),
    ]  # fmt: skip


@pytest.mark.parametrize("route", LINK_ROUTES)
def test_damaged_links_are_clear_pages(site: tuple[TestClient, int, str], route: str) -> None:
    client, subscriber_id, link_key = site
    csrf = csrf_of(client)
    suffix = ".atom" if route == "feed" else ""
    for token in damaged_tokens(subscriber_id, link_key):
        for method in ("GET", "POST"):
            data = {"csrf": csrf, "action": "save", "List-Unsubscribe": "One-Click"}
            response = client.request(method, f"/{route}/{token}{suffix}", data=data if method == "POST" else None)
            assert 200 <= response.status_code < 500, (method, route, token[:50], response.status_code)
            assert "Traceback" not in response.text


ODD_VALUES = ["x" * 3000, "\x00", "\u202e" * 500, "' OR 1=1 --", "<script>alert(1)</script>", "9" * 400, "-1", "1e999"]
FIELDS = ("email", "name", "keywords", "exclude", "category", "seeds", "authors", "max_papers", "frequency", "day",
          "time", "timezone", "action")  # fmt: skip


@pytest.mark.parametrize("field", FIELDS)
def test_odd_form_input_is_never_a_500(site: tuple[TestClient, int, str], field: str) -> None:
    client, subscriber_id, link_key = site
    manage = f"/manage/{SIGNER.sign_manage(subscriber_id, link_key)}"
    for path in ("/subscribe", manage):
        for value in ODD_VALUES:
            data = {"csrf": csrf_of(client), "email": "bob@example.org", "keywords": "graphs", "action": "save",
                    "frequency": "weekly", "day": "mon", "time": "08:00", "timezone": "UTC", field: value}  # fmt: skip
            response = client.post(path, data=data)
            assert response.status_code < 500, (path, field, value[:30], response.status_code)
            assert "<script>alert(1)</script>" not in response.text  # escaped wherever it is shown
    huge = client.post(manage, data={"csrf": csrf_of(client), field: "y" * 100_000})
    assert huge.status_code == 413
