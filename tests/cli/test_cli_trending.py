"""`digestd subscribers add --trending`: a subscription to the trending papers, without a profile."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from sqlalchemy import Engine
from sqlmodel import select

from digestd.models import SentPaper, Subscriber
from digestd.records import PaperRecord
from digestd.store import open_session, save_papers

DAY = date(2026, 3, 2)
SEEN = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
TOPICS = (
    "Quantum error correction protects logical qubits with stabilizer codes and syndrome decoding.",
    "Galaxy evolution, star formation and dark matter halos in cosmological simulations.",
    "Contrastive learning pulls augmented views together in an embedding space.",
    "Robotic grasping with tactile sensing and reinforcement learning for manipulation.",
)


def save(engine: Engine, papers: list[PaperRecord]) -> None:
    with open_session(engine) as session:
        save_papers(session, papers, now=SEEN)


def preview(run, email: str) -> list[tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    result = run("preview", email, "--since", DAY.isoformat(), "--until", DAY.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    return [(paper["id"], paper["reasons"]) for paper in json.loads(result.output)["papers"]]


def paper(number: int, **fields: object) -> PaperRecord:
    topic = TOPICS[number]
    return PaperRecord(id=f"2603.{number:05d}", title=f"Study {number}", abstract=topic, published=DAY, **fields)  # type: ignore[arg-type]


def test_a_trending_subscriber_needs_no_profile(run, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    refused = run("subscribers", "add", "bob@example.org")
    assert refused.exit_code != 0 and "or ask for trending papers" in refused.output
    added = run("subscribers", "add", "ada@example.org", "--trending", "--max-papers", "2")
    assert added.exit_code == 0, added.output
    with open_session(engine) as session:
        ada = session.scalar(select(Subscriber).where(Subscriber.email == "ada@example.org"))
        assert ada is not None and ada.trending
    save(engine, [paper(0, popularity=3), paper(1, popularity=50), paper(2), paper(3, popularity=9)])
    assert preview(run, "ada@example.org") == [
        ("2603.00001", ["trending: 50 upvotes on Hugging Face"]),
        ("2603.00003", ["trending: 9 upvotes on Hugging Face"]),
    ]
    leaving = run("subscribers", "edit", "ada@example.org", "--no-trending")  # nothing would be left
    assert leaving.exit_code != 0 and "no interests given" in leaving.output


def test_without_upvotes_the_readers_who_got_a_paper_count(run, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    for email in ("ada@example.org", "bob@example.org", "cy@example.org"):
        extra = ["--trending"] if email == "ada@example.org" else ["--keywords", "galaxies"]
        assert run("subscribers", "add", email, *extra, "--max-papers", "2").exit_code == 0
    save(engine, [paper(0, source="arxiv"), paper(1, source="arxiv"), paper(2, source="arxiv"), paper(3)])
    with open_session(engine) as session:
        others = session.scalars(select(Subscriber.id).where(Subscriber.email != "ada@example.org")).all()
        session.add_all(SentPaper(subscriber_id=sid, paper_id="2603.00002", sent_at=SEEN) for sid in others)
    picks = preview(run, "ada@example.org")
    assert picks[0] == ("2603.00002", ["trending: carried by 1 source, picked for 2 readers"])


def test_export_and_import_keep_trending(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert run("subscribers", "add", "ada@example.org", "--trending").exit_code == 0
    assert json.loads(run("subscribers", "show", "ada@example.org", "--json").output)["trending"] is True
    exported = tmp_path / "subscribers.csv"
    assert run("subscribers", "export", str(exported)).exit_code == 0
    assert exported.read_text().splitlines()[0].endswith(",min_score,trending")
    assert run("subscribers", "remove", "ada@example.org", "--yes").exit_code == 0
    imported = run("subscribers", "import", str(exported))
    assert imported.exit_code == 0, imported.output
    assert json.loads(run("subscribers", "show", "ada@example.org", "--json").output)["trending"] is True
