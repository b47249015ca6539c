"""Sign-up rate limits: bounded memory that a flood cannot use to free a victim, IPv6 per /64."""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.testclient import TestClient
from web_support import Clock, Outbox, csrf_of, make_settings

from digestd.web.app import create_app
from digestd.web.limits import RateLimiter, client_key


def test_a_flood_of_other_keys_does_not_free_the_victim() -> None:
    limit = RateLimiter(capacity=2, period_seconds=86400.0, max_keys=100)
    assert [limit.allow("victim@example.org", 0.0) for _ in range(3)] == [True, True, False]
    flood = [limit.allow(f"other{i}@example.org", 1.0 + i / 1000) for i in range(1000)]
    assert not limit.allow("victim@example.org", 2.0)  # still limited
    assert len(limit) <= 100  # memory stays bounded
    assert sum(flood) == 99 and not any(flood[99:])  # the flood's new keys are refused instead
    assert limit.allow("victim@example.org", 86400.0)  # refilled with time, as it should


def test_refilled_buckets_make_room_for_new_keys() -> None:
    limit = RateLimiter(capacity=1, period_seconds=60.0, max_keys=10)
    assert all(limit.allow(f"k{i}", 0.0) for i in range(10))
    assert not limit.allow("late", 30.0)  # all ten are still refilling
    assert limit.allow("late", 60.0) and len(limit) <= 10


def test_ipv6_clients_are_keyed_by_their_64() -> None:
    assert client_key("2001:db8:1:2::5") == client_key("2001:DB8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::5") != client_key("2001:db8:1:2::5")
    assert client_key("::ffff:192.0.2.1") == client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("unknown") == "unknown"


def sign_up(client: TestClient, email: str) -> int:
    data = {"csrf": csrf_of(client), "email": email, "keywords": "graphs", "frequency": "weekly", "day": "mon",
            "time": "08:00", "timezone": "UTC"}  # fmt: skip
    return client.post("/subscribe", data=data).status_code


def test_one_ipv6_network_shares_one_sign_up_limit(engine: Engine) -> None:
    app = create_app(make_settings(subscribe_per_ip_per_hour=2), engine, send_message=Outbox(), now=Clock())
    codes = []
    for number, host in enumerate(["2001:db8:1:2::5", "2001:db8:1:2::6", "2001:db8:1:2:aaaa::1", "2001:db8:1:3::5"]):
        with TestClient(app, client=(host, 40000)) as client:  # each address a client of its own
            codes.append(sign_up(client, f"p{number}@example.org"))
    assert codes == [200, 200, 429, 200]
