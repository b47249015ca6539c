"""HTTP tests of the links in every digest: manage, unsubscribe (RFC 8058), rate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from starlette.testclient import TestClient
from web_support import SECRET, START, Clock, Outbox, csrf_of, make_settings, post_signup

from digestd.config import DigestSettings
from digestd.mail.tokens import TokenSigner
from digestd.models import Paper, ProfileItem, Rating, Subscriber
from digestd.records import ACTIVE, PAUSED, UNSUBSCRIBED
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber
from digestd.web.app import create_app

SIGNER = TokenSigner(SECRET)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    app = create_app(make_settings(), engine, send_message=Outbox(), now=clock)
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def ada(engine: Engine) -> int:
    """An active subscriber with a seed paper that is in the database."""
    with open_session(engine) as session:
        session.add(
            Paper(
                id="2401.01234",
                title="Graph diffusion at scale",
                abstract="...",
                published=date(2024, 1, 2),
                first_seen=START,
                last_seen=START,
            )  # fmt: skip
        )
        given = SubscriberInput(email="ada@example.org", keywords="graphs", categories=["cs.LG"], seeds=["2401.01234"])
        subscriber = add_subscriber(session, given, defaults=DigestSettings(), now=START)
        assert subscriber.id is not None
        return subscriber.id


def key(engine: Engine, subscriber_id: int) -> str:
    """The subscriber's link key: what their links are signed with."""
    return load(engine, subscriber_id).link_key


def load(engine: Engine, subscriber_id: int) -> Subscriber:
    with open_session(engine) as session:
        found = session.get(Subscriber, subscriber_id)
        assert found is not None
        session.expunge(found)
        return found


def test_the_manage_page_shows_the_profile_seeds_and_ratings(client: TestClient, engine: Engine, ada: int) -> None:
    with open_session(engine) as session:
        session.add(Rating(subscriber_id=ada, paper_id="2401.01234", value=1, created_at=START))
    page = client.get(f"/manage/{SIGNER.sign_manage(ada, key(engine, ada))}")
    assert page.status_code == 200 and "ada@example.org" in page.text
    assert 'value="graphs"' in page.text and 'value="cs.LG" checked' in page.text
    assert "Graph diffusion at scale" in page.text and "More like this: Graph diffusion at scale" in page.text


def test_saving_the_manage_form_changes_the_profile(client: TestClient, engine: Engine, ada: int) -> None:
    path = f"/manage/{SIGNER.sign_manage(ada, key(engine, ada))}"
    data = {"csrf": csrf_of(client, path), "action": "save", "name": "Ada L", "keywords": "transformers:2, attention",
            "exclude": "", "category": ["cs.CL"], "seeds": "2402.00001", "frequency": "daily", "day": "mon",
            "time": "06:15", "timezone": "Asia/Tokyo"}  # fmt: skip
    done = client.post(path, data=data)
    assert done.status_code == 303 and done.headers["location"] == f"{path}?done=save"
    assert "are saved" in client.get(done.headers["location"]).text
    found = load(engine, ada)
    assert (found.name, found.frequency, found.send_time, found.timezone) == ("Ada L", "daily", "06:15", "Asia/Tokyo")
    with open_session(engine) as session:
        items = {(i.kind, i.value, i.weight) for i in session.scalars(select(ProfileItem))}
    assert items == {("keyword", "transformers", 2.0), ("keyword", "attention", 1.0), ("category", "cs.CL", 1.0),
                     ("seed", "2402.00001", 1.0)}  # fmt: skip


def test_bad_manage_input_shows_the_error_and_changes_nothing(client: TestClient, engine: Engine, ada: int) -> None:
    path = f"/manage/{SIGNER.sign_manage(ada, key(engine, ada))}"
    data = {"csrf": csrf_of(client, path), "action": "save", "keywords": "x", "time": "25:00", "timezone": "UTC"}
    page = client.post(path, data=data)
    assert page.status_code == 400 and "HH:MM" in page.text
    assert load(engine, ada).send_time == "08:00"


def test_pause_resume_and_unsubscribe_from_the_manage_page(client: TestClient, engine: Engine, ada: int) -> None:
    path = f"/manage/{SIGNER.sign_manage(ada, key(engine, ada))}"
    for action, status in (("pause", PAUSED), ("resume", ACTIVE), ("unsubscribe", UNSUBSCRIBED), ("resume", ACTIVE)):
        response = client.post(path, data={"csrf": csrf_of(client, path), "action": action})
        assert response.status_code == 303, response.text
        assert load(engine, ada).status == status
    assert client.post(path, data={"csrf": csrf_of(client, path), "action": "explode"}).status_code == 400


def test_the_manage_form_needs_its_csrf_field(client: TestClient, engine: Engine, ada: int) -> None:
    path = f"/manage/{SIGNER.sign_manage(ada, key(engine, ada))}"
    csrf_of(client, path)
    assert client.post(path, data={"action": "pause"}).status_code == 403
    assert load(engine, ada).status == ACTIVE


@pytest.mark.parametrize(
    ("make_path", "status"),
    [
        (lambda k: f"/manage/{SIGNER.sign_manage(999, k)}", 404),  # unknown subscriber
        (lambda k: f"/manage/{SIGNER.sign_unsubscribe(1, k)}", 400),  # wrong kind
        (lambda k: f"/manage/{TokenSigner('other key').sign_manage(1, k)}", 400),  # other key
        (lambda k: f"/manage/{SIGNER.sign_manage(1, 'another link key')}", 400),  # not this subscriber's
        (lambda k: "/manage/not-a-token", 400),
        (lambda k: f"/rate/{SIGNER.sign_rate(999, k, '2401.01234', 1)}", 404),
        (lambda k: f"/rate/{SIGNER.sign_manage(1, k)}", 400),
        (lambda k: "/unsubscribe/AAAA.BBBB", 400),
        (lambda k: "/manage/bWFuYWdlHzk5OTk5OTk5OTk5OTk5OTk5OTk5OQ.AAAA", 400),  # an id no database holds
    ],
)
def test_bad_and_unknown_tokens(client: TestClient, engine: Engine, ada: int, make_path: object, status: int) -> None:
    assert callable(make_path)
    page = client.get(make_path(key(engine, ada)))
    assert page.status_code == status and "<h1>" in page.text and "Traceback" not in page.text


def test_get_unsubscribe_shows_a_button_and_changes_nothing(client: TestClient, engine: Engine, ada: int) -> None:
    page = client.get(f"/unsubscribe/{SIGNER.sign_unsubscribe(ada, key(engine, ada))}")
    assert page.status_code == 200 and 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert load(engine, ada).status == ACTIVE


def test_one_click_unsubscribe_follows_rfc_8058(engine: Engine, clock: Clock, ada: int) -> None:
    app = create_app(make_settings(), engine, send_message=Outbox(), now=clock)
    with TestClient(app, follow_redirects=False, cookies=None) as client:  # a mail provider: no cookies, no CSRF
        path = f"/unsubscribe/{SIGNER.sign_unsubscribe(ada, key(engine, ada))}"
        response = client.post(path, content=b"List-Unsubscribe=One-Click",
                               headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert response.status_code == 200 and "You are unsubscribed" in response.text
        assert "/manage/" not in response.text and "href" not in response.text.split("<main", 1)[1]
        assert "set-cookie" not in response.headers and "location" not in response.headers
        found = load(engine, ada)
        assert found.status == UNSUBSCRIBED and found.unsubscribed_at == START
        multipart = client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
        assert multipart.status_code == 200  # again, and as multipart/form-data: still fine
        assert client.post(path, data={"something": "else"}).status_code == 400
        gone = client.post(f"/unsubscribe/{SIGNER.sign_unsubscribe(999, 'k')}", data={"List-Unsubscribe": "One-Click"})
        assert gone.status_code == 200  # nothing to stop: the request is still honoured


def test_rating_takes_a_button_press_and_the_latest_wins(
    client: TestClient, engine: Engine, ada: int, clock: Clock
) -> None:
    up, down = (SIGNER.sign_rate(ada, key(engine, ada), "2401.01234", value) for value in (1, -1))
    page = client.get(f"/rate/{up}")
    assert page.status_code == 200 and "Graph diffusion at scale" in page.text
    with open_session(engine) as session:
        assert session.scalars(select(Rating)).all() == []
    thanks = client.post(f"/rate/{up}", data={"csrf": csrf_of(client, f"/rate/{up}")})
    assert thanks.status_code == 200 and "Thank you" in thanks.text
    clock.advance(hours=1)
    client.post(f"/rate/{down}", data={"csrf": csrf_of(client, f"/rate/{down}")})
    with open_session(engine) as session:
        ((paper_id, value, at),) = session.execute(select(Rating.paper_id, Rating.value, Rating.created_at)).all()
    assert (paper_id, value) == ("2401.01234", -1) and at == clock.now
    assert client.post(f"/rate/{up}", data={}).status_code == 403


def test_a_rating_for_a_paper_we_do_not_have_is_kept(client: TestClient, engine: Engine, ada: int) -> None:
    path = f"/rate/{SIGNER.sign_rate(ada, key(engine, ada), '2501.99999', 1)}"
    assert "2501.99999" in client.get(path).text
    assert client.post(path, data={"csrf": csrf_of(client, path)}).status_code == 200
    with open_session(engine) as session:
        assert session.get(Rating, (ada, "2501.99999")) is not None


def test_wrong_methods_get_a_page(client: TestClient) -> None:
    response = client.delete("/")
    assert response.status_code == 405 and "<h1>" in response.text


def test_a_timezone_outside_the_list_is_kept_on_save(client: TestClient, engine: Engine, ada: int) -> None:
    # immediate: a read then a write in one SQLite transaction fails at once ("database is
    # locked", no busy wait) when the app's sign-up sender wrote in between
    with open_session(engine, immediate=True) as session:
        found = session.get(Subscriber, ada)
        assert found is not None
        found.timezone = "EST5EDT"  # valid for zoneinfo, not offered in the list
    path = f"/manage/{SIGNER.sign_manage(ada, key(engine, ada))}"
    assert "<option selected>EST5EDT</option>" in client.get(path).text


@pytest.mark.postgres
def test_sign_up_confirm_rate_and_leave_on_postgresql(postgres_url: str, clock: Clock) -> None:
    from digestd.store import make_engine, migrate
    from digestd.web.signup import purge_unconfirmed

    engine = make_engine(postgres_url)
    migrate(engine)
    outbox = Outbox()
    app = create_app(make_settings(), engine, send_message=outbox, now=clock)
    with TestClient(app, follow_redirects=False) as client:
        data = {"csrf": csrf_of(client), "email": "pg@example.org", "keywords": "graphs", "frequency": "daily",
                "day": "mon", "time": "08:00", "timezone": "UTC"}  # fmt: skip
        assert post_signup(client, data).status_code == 200
        confirm = outbox.last_link("confirm")
        assert client.post(confirm, data={"csrf": csrf_of(client)}).status_code == 200
        with open_session(engine) as session:
            found = session.scalar(select(Subscriber))
            assert found is not None and found.status == ACTIVE and found.id is not None
            subscriber_id = found.id
        for value in (1, -1):
            path = f"/rate/{SIGNER.sign_rate(subscriber_id, key(engine, subscriber_id), '2401.01234', value)}"
            assert client.post(path, data={"csrf": csrf_of(client, path)}).status_code == 200
        path = f"/unsubscribe/{SIGNER.sign_unsubscribe(subscriber_id, key(engine, subscriber_id))}"
        assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with open_session(engine) as session:
        assert [r.value for r in session.scalars(select(Rating))] == [-1]
        assert session.get(Subscriber, subscriber_id).status == UNSUBSCRIBED  # type: ignore[union-attr]
        assert purge_unconfirmed(session, START.replace(year=2027)) == 0
    engine.dispose()
