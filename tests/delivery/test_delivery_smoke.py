from __future__ import annotations

import asyncio
from datetime import timedelta

from seeds import DUE, make_settings, seed_database

from digestd.delivery import send_due
from digestd.render import make_email_builder


def test_smoke(engine, start_sink):
    sink = start_sink()
    emails = seed_database(engine, subscribers=5)
    settings = make_settings(sink)
    builder = make_email_builder(settings.mail, secret_key="k")
    report = asyncio.run(
        send_due(engine, settings, builder, clock=lambda: DUE + timedelta(minutes=1), stop=asyncio.Event())
    )
    assert report.sent == 5
    assert sorted(r for m in sink.handler.messages for r in m.recipients) == emails
