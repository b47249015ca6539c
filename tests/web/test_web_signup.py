"""HTTP tests of sign-up and double opt-in: `/`, `/subscribe`, `/confirm/<token>`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from starlette.testclient import TestClient
from web_support import START, Clock, Outbox, csrf_of, make_settings, post_signup

from digestd.errors import RenderError
from digestd.models import ProfileItem, Subscriber, Suppression
from digestd.records import ACTIVE, PENDING, UNSUBSCRIBED
from digestd.store import open_session
from digestd.subscribers import email_hash
from digestd.web.app import create_app
from digestd.web.signup import purge_unconfirmed


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def client(engine: Engine, clock: Clock, outbox: Outbox) -> Iterator[TestClient]:
    app = create_app(make_settings(), engine, send_message=outbox, now=clock)
    with TestClient(app) as client:
        yield client


def form(client: TestClient, email: str = "ada@example.org", **fields: str | list[str]) -> dict[str, object]:
    return {
        "csrf": csrf_of(client),
        "email": email,
        "name": "Ada",
        "keywords": "graph neural networks, diffusion",
        "exclude": "survey",
        "category": ["cs.LG", "stat.ML"],
        "frequency": "weekly",
        "day": "tue",
        "time": "07:30",
        "timezone": "Europe/Berlin",
        **fields,
    }


def subscriber(engine: Engine, email: str = "ada@example.org") -> Subscriber | None:
    with open_session(engine) as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        if found is not None:
            session.expunge(found)
        return found


def test_the_form_is_accessible_html_with_a_csrf_cookie(client: TestClient) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text and '<label for="email">' in page.text
    assert 'value="cs.LG"' in page.text and "<option selected>UTC</option>" in page.text
    assert "digestd_csrf" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/timezone.js").status_code == 200


def test_subscribe_creates_a_pending_subscriber_and_mails_a_link(
    client: TestClient, engine: Engine, outbox: Outbox
) -> None:
    page = post_signup(client, form(client, email="Ada@Example.org"))
    assert page.status_code == 200 and "Check your inbox" in page.text
    found = subscriber(engine)
    assert found is not None and found.status == PENDING and found.confirm_nonce
    assert (found.timezone, found.send_day, found.send_time, found.name) == ("Europe/Berlin", "tue", "07:30", "Ada")
    with open_session(engine) as session:
        items = {(i.kind, i.value) for i in session.scalars(select(ProfileItem))}
    assert {("keyword", "diffusion"), ("exclude", "survey"), ("category", "stat.ML")} <= items
    (message,) = outbox.messages
    assert message["To"] == "ada@example.org" and "confirm" in message["Subject"]
    assert "http://testserver/confirm/" in message.get_content()


def test_confirming_takes_a_button_press_and_works_once(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    post_signup(client, form(client))
    link = outbox.last_link("confirm")
    page = client.get(link)
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    assert subscriber(engine).status == PENDING  # type: ignore[union-attr]  # GET changes nothing
    done = client.post(link, data={"csrf": csrf_of(client, link)})
    assert done.status_code == 200 and "You are subscribed" in done.text and "/manage/" in done.text
    found = subscriber(engine)
    assert found is not None and found.status == ACTIVE and found.confirmed_at == START
    assert found.confirm_nonce is None and found.next_due_at is not None
    replay = client.post(link, data={"csrf": csrf_of(client)})
    assert replay.status_code == 400 and "already been used" in replay.text
    assert client.get(link).status_code == 400


def test_a_confirmation_link_expires_after_72_hours(
    client: TestClient, engine: Engine, outbox: Outbox, clock: Clock
) -> None:
    post_signup(client, form(client))
    link = outbox.last_link("confirm")
    clock.advance(hours=72, seconds=1)
    page = client.post(link, data={"csrf": csrf_of(client)})
    assert page.status_code == 400 and "expired" in page.text
    assert subscriber(engine).status == PENDING  # type: ignore[union-attr]


def test_a_newer_link_replaces_the_older_one(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    post_signup(client, form(client))
    first = outbox.last_link("confirm")
    post_signup(client, form(client, keywords="transformers"))
    second = outbox.last_link("confirm")
    assert client.post(first, data={"csrf": csrf_of(client)}).status_code == 400
    assert client.post(second, data={"csrf": csrf_of(client)}).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/confirm/garbage", 400),
        ("/confirm/Y29uZmlybQ.AAAA", 400),  # well formed, wrong signature
        ("/nowhere", 404),
    ],
)
def test_bad_links_get_an_error_page(client: TestClient, path: str, status: int) -> None:
    page = client.get(path)
    assert page.status_code == status and "<h1>" in page.text and "Traceback" not in page.text


def test_a_confirmation_for_a_deleted_signup_is_404(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    post_signup(client, form(client))
    link = outbox.last_link("confirm")
    with open_session(engine) as session:
        assert purge_unconfirmed(session, START.replace(year=2027)) == 1
    assert client.get(link).status_code == 404


def test_a_post_without_the_csrf_field_or_cookie_is_refused(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    data = form(client)
    data["csrf"] = "0" * 64
    assert post_signup(client, data).status_code == 403
    good = form(client)
    client.cookies.clear()
    page = post_signup(client, good)
    assert page.status_code == 403 and "reload the page" in page.text
    assert subscriber(engine) is None and outbox.messages == []


def test_bad_input_shows_the_form_again_with_the_values(client: TestClient, engine: Engine) -> None:
    page = post_signup(client, form(client, timezone="Mars/Olympus", keywords="kept words"))
    assert page.status_code == 400 and "timezone" in page.text and 'value="kept words"' in page.text
    assert post_signup(client, form(client, email="not-an-address")).status_code == 400
    nothing = post_signup(client, form(client, keywords="", category=[]))
    assert nothing.status_code == 400 and "no interests given" in nothing.text
    assert subscriber(engine) is None


def test_an_active_address_gets_a_manage_link_and_the_same_page(
    client: TestClient, engine: Engine, outbox: Outbox
) -> None:
    post_signup(client, form(client))
    link = outbox.last_link("confirm")
    client.post(link, data={"csrf": csrf_of(client)})
    again = post_signup(client, form(client, keywords="something else"))
    assert again.status_code == 200 and "Check your inbox" in again.text
    assert "already subscribed" in outbox.messages[-1]["Subject"]
    manage = outbox.last_link("manage")
    assert client.get(manage).status_code == 200
    assert subscriber(engine).status == ACTIVE  # type: ignore[union-attr]


def test_a_suppressed_address_gets_no_mail_and_the_same_page(
    client: TestClient, engine: Engine, outbox: Outbox
) -> None:
    with open_session(engine) as session:
        session.add(Suppression(email_hash=email_hash("gone@example.org"), reason="wiped", created_at=START))
    page = post_signup(client, form(client, email="gone@example.org"))
    assert page.status_code == 200 and "Check your inbox" in page.text
    assert outbox.messages == [] and subscriber(engine, "gone@example.org") is None


def test_an_unsubscribed_address_can_sign_up_again(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    post_signup(client, form(client))
    client.post(outbox.last_link("confirm"), data={"csrf": csrf_of(client)})
    with open_session(engine) as session:
        found = session.scalar(select(Subscriber))
        assert found is not None
        found.status = UNSUBSCRIBED
    post_signup(client, form(client))
    assert subscriber(engine).status == PENDING  # type: ignore[union-attr]
    client.post(outbox.last_link("confirm"), data={"csrf": csrf_of(client)})
    assert subscriber(engine).status == ACTIVE  # type: ignore[union-attr]


def test_sign_ups_are_rate_limited_per_client(engine: Engine, outbox: Outbox, clock: Clock) -> None:
    app = create_app(make_settings(subscribe_per_ip_per_hour=3), engine, send_message=outbox, now=clock)
    with TestClient(app) as client:
        codes = [post_signup(client, form(client, email=f"p{i}@example.org")).status_code for i in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = post_signup(client, form(client, email="p9@example.org"))
        assert "Too many requests" in limited.text and limited.headers["retry-after"] == "3600"
        clock.advance(minutes=20)  # one token back
        assert post_signup(client, form(client, email="p5@example.org")).status_code == 200
    assert len(outbox.messages) == 4


def test_confirmation_mails_are_rate_limited_per_address(engine: Engine, outbox: Outbox, clock: Clock) -> None:
    app = create_app(make_settings(mails_per_address_per_day=2), engine, send_message=outbox, now=clock)
    with TestClient(app) as client:
        codes = [post_signup(client, form(client, email="ada@example.org")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert post_signup(client, form(client, email="bob@example.org")).status_code == 200
    assert len(outbox.messages) == 3


def test_purge_removes_pending_subscribers_after_30_days(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    post_signup(client, form(client, email="late@example.org"))
    post_signup(client, form(client, email="kept@example.org"))
    client.post(outbox.last_link("confirm"), data={"csrf": csrf_of(client)})
    with open_session(engine) as session:
        assert purge_unconfirmed(session, START.replace(day=28, month=12)) == 0  # exactly 30 days: kept
        assert purge_unconfirmed(session, START.replace(day=29, month=12)) == 1
    kept = subscriber(engine, "kept@example.org")
    assert subscriber(engine, "late@example.org") is None and kept is not None
    with open_session(engine) as session:
        assert {i.subscriber_id for i in session.scalars(select(ProfileItem))} == {kept.id}


def test_unconfirmed_subscribers_are_not_due_for_a_digest(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    from digestd.api import due_subscribers

    post_signup(client, form(client))
    with open_session(engine) as session:
        assert due_subscribers(session, START.replace(year=2027)) == []
    client.post(outbox.last_link("confirm"), data={"csrf": csrf_of(client)})
    with open_session(engine) as session:
        assert [s.email for s in due_subscribers(session, START.replace(year=2027))] == ["ada@example.org"]


def test_the_confirmation_mail_carries_nothing_the_requester_typed(client: TestClient, outbox: Outbox) -> None:
    post_signup(client, form(client, name="Visit evil.example now"))
    (message,) = outbox.messages
    assert "evil" not in message.as_string() and message["Auto-Submitted"] == "auto-generated"


def test_an_oversized_post_is_refused(client: TestClient, engine: Engine) -> None:
    page = post_signup(client, form(client, keywords="x" * 70_000))
    assert page.status_code == 413 and subscriber(engine) is None


def test_a_non_ascii_domain_signs_up_in_its_ascii_form(client: TestClient, engine: Engine, outbox: Outbox) -> None:
    assert post_signup(client, form(client, email="Ascii@Bücher.Example.com")).status_code == 200
    assert subscriber(engine, "ascii@xn--bcher-kva.example.com") is not None
    assert outbox.messages[-1]["To"] == "ascii@xn--bcher-kva.example.com"


def test_a_web_template_reaching_for_python_internals_fails_at_start_up(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    settings = make_settings()
    settings = replace(settings, mail=replace(settings.mail, templates_dir=str(tmp_path)))
    with pytest.raises(RenderError, match=r"index\.html, line 1: '__\w+__' is not available to templates"):
        create_app(settings, engine, send_message=Outbox())
