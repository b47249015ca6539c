"""`POST /hooks/bounce`: a provider's report over HTTP, the same policy as a mailed bounce."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient
from test_events import SETTINGS, SIGNER, add_reader, state
from web_support import Outbox

from digestd.config import BounceSettings
from digestd.mail.tokens import BOUNCE
from digestd.records import ACTIVE, SUPPRESSED
from digestd.web.app import create_app

HOOK_SECRET = "webhook-secret-from-the-environment"
AUTH = {"Authorization": f"Bearer {HOOK_SECRET}"}


def client_for(engine: Engine, secret: str = HOOK_SECRET) -> TestClient:
    settings = replace(SETTINGS, bounces=replace(BounceSettings(), webhook_secret=secret))
    return TestClient(create_app(settings, engine, send_message=Outbox()))


@pytest.fixture
def readers(engine: Engine) -> list[tuple[int, int, str]]:
    """Two subscribers with a sent digest each, added before the web app starts: its sign-up
    sender writes at start, and a test's own write then would meet SQLite's snapshot check."""
    return [add_reader(engine), add_reader(engine, "bob@example.org")]


@pytest.fixture
def client(engine: Engine, readers: list[tuple[int, int, str]]) -> Iterator[TestClient]:
    with client_for(engine) as running:
        yield running


def test_a_hard_bounce_by_address_suppresses(engine: Engine, client: TestClient, readers: list) -> None:
    sid, other = readers[0][0], readers[1][0]
    body = {"email": "Ada@Example.org", "kind": "hard", "status": "5.1.1", "diagnostic": "550 no such user"}
    answer = client.post("/hooks/bounce", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "suppressed (hard bounce)"
    assert state(engine, sid) == (SUPPRESSED, True, [("hard", "5.1.1")])
    assert state(engine, other) == (ACTIVE, False, [])


def test_a_complaint_by_return_token(engine: Engine, client: TestClient, readers: list) -> None:
    sid, did, key = readers[0]
    token = SIGNER.sign_return(BOUNCE, did, key)
    answer = client.post("/hooks/bounce", json={"token": token, "kind": "complaint"}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert state(engine, sid) == (SUPPRESSED, True, [("complaint", "")])


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        ({}, {"email": "ada@example.org", "kind": "hard"}, 401, "Authorization"),
        ({"Authorization": "Bearer wrong"}, {"email": "ada@example.org", "kind": "hard"}, 401, "Authorization"),
        (AUTH, {"email": "ada@example.org", "kind": "bogus"}, 400, "kind"),
        (AUTH, {"kind": "hard"}, 400, "email or the return token"),
        (AUTH, {"email": "nobody@example.org", "kind": "hard"}, 404, "nobody@example.org"),
        (AUTH, {"token": "1-aaaaaaaaaaaaaaaa", "kind": "hard"}, 404, "not one digestd signed"),
        (AUTH, ["not", "an", "object"], 400, "JSON object"),
        (AUTH, {"email": "ada@example.org", "kind": "hard", "diagnostic": "x\x00y"}, 400, "diagnostic"),
    ],
)
def test_bad_requests_change_nothing(
    engine: Engine, client: TestClient, readers: list, headers: dict[str, str], body: object, status: int, message: str
) -> None:
    sid = readers[0][0]
    answer = client.post("/hooks/bounce", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert state(engine, sid) == (ACTIVE, False, [])


def test_without_a_secret_the_hook_does_not_exist(engine: Engine) -> None:
    sid = add_reader(engine)[0]
    with client_for(engine, secret="") as client:
        answer = client.post("/hooks/bounce", json={"email": "ada@example.org", "kind": "hard"}, headers=AUTH)
    assert answer.status_code == 404
    assert state(engine, sid) == (ACTIVE, False, [])
