"""Trending papers: a subscriber without a profile gets the period's most popular papers."""

from __future__ import annotations

from datetime import date, datetime

from digestd.ranking.digest import build_digest, prepare_window
from digestd.records import Digest, Keyword, PaperRecord, Profile

NOW = datetime(2026, 3, 2, 8, 0)
TOPICS = (
    "Quantum error correction protects logical qubits with stabilizer codes and syndrome decoding.",
    "Galaxy evolution, star formation and dark matter halos in cosmological simulations.",
    "Contrastive learning pulls augmented views together in an embedding space.",
    "Robotic grasping with tactile sensing and reinforcement learning for manipulation.",
)


def paper(number: int, **fields: object) -> PaperRecord:
    topic = TOPICS[number % len(TOPICS)]
    return PaperRecord(  # type: ignore[arg-type]
        id=f"2603.{number:05d}",
        title=f"Study {number}: {topic.split(',')[0]}",
        abstract=f"{topic} Variant {number} adds its own twist number{number}.",
        published=date(2026, 3, 1),
        **fields,
    )


def digest(papers: list[PaperRecord], profile: Profile, readers: dict[str, int] | None = None) -> Digest:
    window = prepare_window(papers, readers=readers)
    return build_digest(window, profile, period_start=NOW, period_end=NOW, now=NOW)


def ids(found: Digest) -> list[str]:
    return [pick.paper.id for pick in found.picks]


def test_trending_alone_ranks_by_upvotes_and_never_sends_twice() -> None:
    papers = [paper(n, popularity=votes, source="hf_daily") for n, votes in enumerate([3, 40, 0, 12])]
    found = digest(papers, Profile(1, "a@example.org", trending=True, max_papers=2))
    assert ids(found) == ["2603.00001", "2603.00003"]  # 40, then 12 upvotes
    assert found.picks[0].reasons == ("trending: 40 upvotes on Hugging Face",)
    assert all(section.label for section in found.sections)  # sections as in any digest
    sent = frozenset(ids(found))
    again = digest(papers, Profile(1, "a@example.org", trending=True, max_papers=2, already_sent=sent))
    assert ids(again) == ["2603.00000", "2603.00002"]  # never twice: 3 upvotes, then the one with none


def test_without_upvotes_sources_and_readers_count() -> None:
    papers = [paper(0, source="arxiv"), paper(1, source="arxiv,rss"), paper(2, source="arxiv"), paper(3)]
    found = digest(papers, Profile(1, "a@example.org", trending=True, max_papers=2), readers={"2603.00002": 4})
    assert ids(found) == ["2603.00002", "2603.00001"]  # 1 source + 4 readers, then 2 sources
    assert found.picks[0].reasons == ("trending: carried by 1 source, picked for 4 readers",)
    assert found.picks[1].reasons == ("trending: carried by 2 sources",)


def test_trending_with_interests_only_lifts_matching_papers() -> None:
    papers = [paper(n, popularity=votes) for n, votes in enumerate([0, 90, 0, 0, 5, 0, 0, 0])]
    keywords = (Keyword("quantum error correction"),)
    plain = digest(papers, Profile(1, "a@example.org", keywords=keywords, max_papers=2))
    trending = digest(papers, Profile(1, "a@example.org", keywords=keywords, trending=True, max_papers=2))
    assert set(ids(trending)) <= {"2603.00000", "2603.00004"}  # the 90-upvote galaxy paper stays out
    assert ids(trending)[0] == "2603.00004" and set(ids(plain)) == set(ids(trending))
    assert "trending: 5 upvotes on Hugging Face" in trending.picks[0].reasons
    assert any(reason.startswith("matched") for reason in trending.picks[0].reasons)


def test_no_interests_and_no_trending_gets_nothing() -> None:
    papers = [paper(n, popularity=10) for n in range(4)]
    assert ids(digest(papers, Profile(1, "a@example.org", max_papers=3))) == []
