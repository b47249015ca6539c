"""The links in a real digest work on the real web app: rate, manage, one-click unsubscribe."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

from sqlalchemy import Engine
from sqlmodel import select
from starlette.testclient import TestClient
from web_support import SECRET, START, Clock, Outbox, make_settings

from digestd.api import preview_digest
from digestd.config import DigestSettings
from digestd.demo import SAMPLE_PAPERS
from digestd.ingest.run import ingest_file
from digestd.mail.render import make_email_builder
from digestd.models import Rating, Subscriber
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber
from digestd.web.app import create_app


def test_every_link_in_a_digest_answers_on_the_web(engine: Engine) -> None:
    settings = make_settings()
    ingest_file(engine, SAMPLE_PAPERS, now=START)
    with open_session(engine) as session:
        add_subscriber(
            session,
            SubscriberInput(email="ada@example.org", keywords="surface code"),
            defaults=DigestSettings(),
            now=START,
        )
    digest = preview_digest(engine, "ada@example.org", now=START, since=START.date().replace(day=1))
    assert digest.picks
    email = make_email_builder(settings.mail, secret_key=SECRET).build(digest, period="2026-11-30", now=START)
    message = message_from_bytes(email.data, policy=policy.default)
    html = message.get_body(("html",)).get_content()
    links = set(re.findall(r'href="http://testserver(/(?:rate|manage|unsubscribe)/[^"]+)"', html))
    assert {link.split("/")[1] for link in links} == {"rate", "manage", "unsubscribe"}
    header = re.search(r"<http://testserver(/unsubscribe/[^>]+)>", message["List-Unsubscribe"])
    assert header, message["List-Unsubscribe"]

    client = TestClient(create_app(settings, engine, send_message=Outbox(), now=Clock()))
    for link in sorted(links):
        assert client.get(link).status_code == 200, link

    rate_up = next(link for link in sorted(links) if link.startswith("/rate/"))
    page = client.get(rate_up).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf, page
    assert client.post(rate_up, data={"csrf": csrf.group(1)}).status_code == 200
    with open_session(engine) as session:
        assert len(session.scalars(select(Rating)).all()) == 1

    one_click = client.post(header.group(1), data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert one_click.status_code == 200
    with open_session(engine) as session:
        assert session.scalars(select(Subscriber.status)).one() == "unsubscribed"
