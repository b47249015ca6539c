"""The public API end to end: on small windows and on the shared corpus of real abstracts."""

from __future__ import annotations

import gc
import gzip
import json
import os
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from digestd.ranking.digest import Window, build_digest, build_digests, prepare_window
from digestd.ranking.profiles import find_excluded
from digestd.records import Keyword, PaperRecord, Profile

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
START, END, NOW = datetime(2026, 3, 1), datetime(2026, 7, 1), datetime(2026, 7, 1, 8, 0)


def load_corpus() -> list[PaperRecord]:
    """The shared corpus; skipped when absent, but a failure under CI=true."""
    path = DATA / "abstracts.jsonl.gz"
    if not path.exists():
        reason = f"shared corpus {path} not found (expected ../shared/data next to the checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [
        PaperRecord(
            id=row["id"],
            title=row["title"],
            abstract=row["abstract"],
            categories=tuple(row["categories"]),
            published=date.fromisoformat(row["published"]) if row["published"] else None,
        )
        for row in rows
    ]


@pytest.fixture(scope="module")
def corpus() -> list[PaperRecord]:
    return load_corpus()


@pytest.fixture(scope="module")
def window(corpus: list[PaperRecord]) -> Window:
    """Papers published from March 2026 (about 1,700), with 2025 papers available as seeds."""
    recent = [paper for paper in corpus if paper.published and paper.published >= START.date()]
    older = [paper for paper in corpus if paper.published and date(2025, 1, 1) <= paper.published < START.date()]
    return prepare_window(recent, referenced=older[:400])


def realistic_profiles(window: Window) -> list[Profile]:
    # Seeds on a topic the window has (information theory): seeds on one it lacks give an empty digest.
    seeds = tuple(paper.id for paper in window.referenced if "cs.IT" in paper.categories)[:3]
    return [
        Profile(1, "a@example.org", keywords=(Keyword("contrastive learning"), Keyword("vision transformer"))),
        Profile(2, "b@example.org", keywords=(Keyword("dark matter"), Keyword("galaxy clusters", 2.0)), max_papers=8),
        Profile(3, "c@example.org", seeds=seeds, max_papers=12),
        Profile(4, "d@example.org", keywords=(Keyword("language models"),), excluded=("LLM", "large language")),
        Profile(5, "e@example.org", keywords=(Keyword("robot"),), categories=("cs.RO",), category_filter=True),
    ]


def test_one_digest_per_profile_in_order(window: Window) -> None:
    profiles = realistic_profiles(window)
    digests = build_digests(window, profiles, period_start=START, period_end=END, now=NOW)
    assert [digest.profile for digest in digests] == profiles
    for digest in digests:
        assert digest.candidates == len(window.papers)
        assert (digest.period_start, digest.period_end, digest.generated_at) == (START, END, NOW)
        assert 0 < len(digest.picks) <= digest.profile.max_papers
        for section in digest.sections:
            assert section.picks and all(pick.section == section.label for pick in section.picks)
            scores = [pick.score for pick in section.picks]
            assert scores == sorted(scores, reverse=True)
        assert all(pick.reasons for pick in digest.picks)


def test_digests_built_together_equal_digests_built_alone(window: Window) -> None:
    """Reasons and sections are made for a whole chunk at once: no profile's may leak into another's."""
    liked = tuple(paper.id for paper in window.papers[:6])
    profiles = [
        replace(profile, max_papers=20)
        for profile in [
            *realistic_profiles(window),
            Profile(6, "f@example.org", liked=liked, disliked=(window.papers[7].id,)),
            Profile(7, "g@example.org", keywords=(Keyword("neural networks"),), authors=("A. Smith", "Wang")),
            Profile(8, "h@example.org", categories=("astro-ph", "hep-th"), keywords=(Keyword("black holes"),)),
            Profile(9, "i@example.org"),
        ]
    ]
    together = build_digests(window, profiles, period_start=START, period_end=END, now=NOW)
    assert gc.isenabled()  # paused while building, then restored
    for profile, digest in zip(profiles, together, strict=True):
        assert digest == build_digest(window, profile, period_start=START, period_end=END, now=NOW)
    assert all(digest.sections for digest in together[:-1]) and not together[-1].sections


def test_excluded_words_never_appear(window: Window) -> None:
    profile = realistic_profiles(window)[3]
    digest = build_digest(window, replace(profile, max_papers=30), period_start=START, period_end=END, now=NOW)
    assert len(digest.picks) == 30
    assert not [pick.paper.title for pick in digest.picks if find_excluded(profile.excluded, pick.paper.text)]


def test_category_filter_keeps_only_that_category(window: Window) -> None:
    digest = build_digest(window, realistic_profiles(window)[4], period_start=START, period_end=END, now=NOW)
    assert digest.picks and all("cs.RO" in pick.paper.categories for pick in digest.picks)


def test_next_digest_never_repeats_a_paper(window: Window) -> None:
    profile = realistic_profiles(window)[0]
    first = build_digest(window, profile, period_start=START, period_end=END, now=NOW)
    sent = frozenset(pick.paper.id for pick in first.picks)
    second = build_digest(window, replace(profile, already_sent=sent), period_start=START, period_end=END, now=NOW)
    assert second.picks and not sent & {pick.paper.id for pick in second.picks}


def test_same_input_gives_the_same_digests(corpus: list[PaperRecord], window: Window) -> None:
    again = prepare_window(window.papers, referenced=window.referenced)
    assert again.labels == window.labels
    profiles = realistic_profiles(window)
    first = build_digests(window, profiles, period_start=START, period_end=END, now=NOW)
    second = build_digests(again, profiles, period_start=START, period_end=END, now=NOW)
    assert first == second


def test_five_near_duplicates_do_not_fill_the_digest(window: Window) -> None:
    original = next(paper for paper in window.papers if "contrastive learning" in paper.text.lower())
    copies = [replace(original, id=f"9999.0000{n}", title=f"{original.title} (v{n})") for n in range(5)]
    noisy = prepare_window([*copies, *window.papers])
    profile = Profile(1, "a@example.org", keywords=(Keyword("contrastive learning"),), max_papers=10)
    digest = build_digest(noisy, profile, period_start=START, period_end=END, now=NOW)
    twins = [pick for pick in digest.picks if pick.paper.abstract == original.abstract]
    assert len(digest.picks) == 10 and len(twins) == 1


def test_empty_window_gives_empty_digests() -> None:
    window = prepare_window([])
    profiles = [Profile(1, "a@example.org", keywords=(Keyword("anything"),), seeds=("2401.00001",))]
    (digest,) = build_digests(window, profiles, period_start=START, period_end=END, now=NOW)
    assert digest.is_empty and digest.sections == () and digest.candidates == 0


def test_tiny_windows_work() -> None:
    one = PaperRecord(id="2603.00001", title="Surface codes", abstract="Quantum error correction with surface codes.")
    for papers in ([one], [one, replace(one, id="2603.00002")], [replace(one, abstract="the and of")]):
        window = prepare_window(papers)
        digest = build_digest(
            window, Profile(1, "a@example.org", keywords=(Keyword("surface codes"),)), period_start=START,
            period_end=END, now=NOW,
        )  # fmt: skip
        assert len(digest.picks) <= 1
