"""`digestd demo`: the whole flow offline, on sample papers that ship with digestd."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

from digestd import api
from digestd.config import DatabaseSettings, Settings
from digestd.ingest.run import ingest_file
from digestd.mail.render import face_of, load_templates, render_email, render_parts
from digestd.records import Digest
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber

SAMPLE_PAPERS = Path(__file__).resolve().parent / "sample" / "papers.jsonl"
SAMPLE_SINCE, SAMPLE_UNTIL = date(2026, 11, 16), date(2026, 11, 22)

DEMO_SUBSCRIBERS = (
    SubscriberInput(
        email="ada@example.org",
        name="Ada",
        keywords="graph neural networks:2, diffusion models, message passing",
        exclude="survey",
        categories=["cs.LG"],
        timezone="Europe/Berlin",
    ),
    SubscriberInput(
        email="emmy@example.org",
        name="Emmy",
        keywords="quantum error correction:2, surface code, decoder",
        authors=["Mira Okafor"],
        frequency="daily",
        time="07:00",
        timezone="America/New_York",
    ),
    SubscriberInput(
        email="vera@example.org",
        name="Vera",
        keywords="dark matter, galaxy",
        seeds=["2611.30003"],
        timezone="Asia/Tokyo",
        max_papers=5,
    ),
)


@dataclass(frozen=True)
class DemoResult:
    digest: Digest
    eml: Path
    html: Path


def run_demo(folder: Path, settings: Settings, *, now: datetime) -> list[DemoResult]:
    """Create a throw-away database in `folder`, load the sample, add three subscribers,
    and write each one's digest as `.eml` and `.html`."""
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "demo.sqlite3"
    database.unlink(missing_ok=True)
    settings = replace(settings, database=DatabaseSettings(url=f"sqlite:///{database}"))
    api.init_database(settings)
    engine = api.open_database(settings)
    try:
        ingest_file(engine, SAMPLE_PAPERS, now=now)
        with open_session(engine) as session:
            for given in DEMO_SUBSCRIBERS:
                add_subscriber(session, given, defaults=settings.digest, now=now)
        templates = load_templates(settings.mail)
        face = face_of(settings.web, settings.mail)
        results = []
        for given in DEMO_SUBSCRIBERS:
            digest = api.preview_digest(engine, given.email, now=now, since=SAMPLE_SINCE, until=SAMPLE_UNTIL)
            period = SAMPLE_UNTIL.isoformat()
            message = render_email(templates, digest, mail=settings.mail, period=period, now=now, face=face)
            _, html = render_parts(templates, digest, mail=settings.mail, face=face)
            stem = folder / given.email.split("@")[0]
            eml, html_path = stem.with_suffix(".eml"), stem.with_suffix(".html")
            eml.write_bytes(message.as_bytes())
            html_path.write_text(html, encoding="utf-8")
            results.append(DemoResult(digest, eml, html_path))
        return results
    finally:
        engine.dispose()
