"""Sections as a reader sees them: grouped by what brought the picks, named by a phrase their papers hold."""

from __future__ import annotations

import re
from datetime import date, datetime

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from test_digest import load_corpus

from digestd.ranking.digest import Window, build_digests, prepare_window
from digestd.ranking.phrases import Phrases
from digestd.ranking.profiles import fold_text, keyword_variants
from digestd.ranking.sections import MORE_PAPERS, SINGLE_SECTION, plan_chunk_sections, plan_sections
from digestd.records import Digest, Keyword, PaperRecord, Profile

NOW = datetime(2026, 3, 1, 8)
# Words that say nothing about a topic on their own: the examples, and their kin.
GENERIC_LABELS = frozenset(
    """apply random dark finite machine image images video model models method methods approach data learning
    deep neural network networks quantum graph system systems results paper study analysis framework novel new
    based using large small high low efficient dynamic optimal linear self multi fine grained cross
    interacting supervised spiking project page""".split()
)
ADJECTIVES = frozenset(
    "dark random finite deep neural quantum large small high low fine self multi cross spiking".split()
)


def toy_phrases() -> Phrases:
    """Papers 0-3 hold "surface codes", 4-6 "gaussian splatting", 7-8 "galaxy clusters"; 9-11 nothing shared."""
    names = ("surface codes", "gaussian splatting", "galaxy clusters", "qubits")
    top = np.full((12, 2), -1)
    top[0:4, 0], top[4:7, 0], top[7:9, 0], top[[0, 5], 1] = 0, 1, 2, 3
    return Phrases(names, np.array([3.0, 4.0, 5.0, 1.0]), top)


def test_a_small_digest_is_one_section_named_when_one_label_fits_most_of_it() -> None:
    assert plan_sections([0, 1, 5], toy_phrases()) == [("Surface codes", [0, 1, 2])]
    assert plan_sections([0, 5, 9, 10], toy_phrases()) == [(SINGLE_SECTION, [0, 1, 2, 3])]
    assert plan_sections([], toy_phrases()) == []


def test_picks_group_by_shared_phrase_and_lone_papers_go_under_more_papers() -> None:
    sections = plan_sections([4, 0, 9, 1, 5, 2, 7, 6], toy_phrases())
    assert sections == [
        ("Gaussian splatting", [0, 4, 7]),
        ("Surface codes", [1, 3, 5]),
        (MORE_PAPERS, [2, 6]),  # paper 9 holds nothing shared; paper 7 is the digest's only galaxy paper
    ]


def test_the_readers_keyword_names_the_papers_it_brought() -> None:
    # The reader's keyword "quantum memory" (number 0) matched papers 0, 1 and 9, which also hold
    # "surface codes" (0, 1) or nothing shared (9): what brought them names their section.
    rows = [0, 1, 2, 3, 9, 10]
    matched = np.array([[0], [0], [-1], [-1], [0], [-1]])
    sections = plan_sections(rows, toy_phrases(), matched, ["quantum memory"])
    assert sections == [("Quantum memory", [0, 1, 4]), ("Surface codes", [2, 3]), (MORE_PAPERS, [5])]


def test_a_digest_with_nothing_shared_is_one_section() -> None:
    assert plan_sections([0, 4, 7, 9, 10, 11], toy_phrases()) == [(SINGLE_SECTION, [0, 1, 2, 3, 4, 5])]


def test_sections_of_many_digests_at_once_match_each_digest_alone() -> None:
    phrases = toy_phrases()
    digests = [[0, 4, 1, 5, 6, 2], [], [7, 8, 0, 9, 1, 2, 3, 10], [9, 8, 7, 5, 6, 0, 1], [4, 2, 5], [6]]
    keywords = ["surface codes", "dark matter"]
    matches = [[[0, 1] if row in (7, 8) else [-1, -1] for row in rows] for rows in digests]
    owners = np.repeat(np.arange(len(digests)), [len(rows) for rows in digests])
    matched = np.array([m for rows in matches for m in rows]).reshape(-1, 2)
    rows = np.array([row for rows in digests for row in rows])
    plan = plan_chunk_sections(owners, rows, phrases, matched, keywords)
    offsets = np.r_[0, np.cumsum([len(rows) for rows in digests])]
    bounds = plan.starts.tolist()
    together = [
        (int(owner), label, [int(at) - offsets[owner] for at in plan.order[a:b]])
        for owner, label, a, b in zip(plan.owners, plan.labels, bounds[:-1], bounds[1:], strict=True)
    ]
    alone = [
        (owner, label, at)
        for owner, rows in enumerate(digests)
        for label, at in plan_sections(rows, phrases, np.array(matches[owner]).reshape(-1, 2), keywords)
    ]
    assert together == alone
    # The keyword brought papers 7 and 8 (rather than their phrase "galaxy clusters"), and it is
    # also the phrase of papers 0 to 3: one section.
    assert (2, "Surface codes", [0, 1, 2, 4, 5, 6]) in alone


def load_window_papers() -> tuple[list[PaperRecord], list[PaperRecord]]:
    """February 2026 of the shared corpus (the window) and 2025 (seeds); skipped when absent, never under CI."""
    papers = [paper for paper in load_corpus() if paper.published]
    window = [paper for paper in papers if date(2026, 2, 1) <= paper.published <= date(2026, 2, 28)]  # type: ignore[operator]
    older = [paper for paper in papers if date(2025, 1, 1) <= paper.published < date(2026, 1, 1)]  # type: ignore[operator]
    return window, older


def seeds_about(papers: list[PaperRecord], *words: str) -> tuple[str, ...]:
    return tuple(paper.id for paper in papers if all(word in paper.title.lower() for word in words))[:4]


@pytest.fixture(scope="module")
def real_digests() -> tuple[Window, list[Digest]]:
    papers, older = load_window_papers()
    profiles = [
        Profile(1, "a@example.org", keywords=(Keyword("gaussian splatting"), Keyword("novel view synthesis"))),
        Profile(2, "b@example.org", keywords=(Keyword("dark matter"), Keyword("galaxy clusters", 2.0))),
        Profile(3, "c@example.org", keywords=(Keyword("quantum error correction"), Keyword("surface code"))),
        Profile(4, "d@example.org", keywords=(Keyword("large language models"), Keyword("reasoning"))),
        Profile(5, "e@example.org", keywords=(Keyword("diffusion models"), Keyword("image editing")), max_papers=30),
        Profile(6, "f@example.org", keywords=(Keyword("graph neural networks", 2.0), Keyword("diffusion models"))),
        Profile(7, "g@example.org", keywords=(Keyword("robot"),), categories=("cs.RO",), max_papers=10),
        Profile(8, "h@example.org", seeds=seeds_about(older, "gaussian splatting")),
        Profile(9, "i@example.org", seeds=seeds_about(older, "quantum") + seeds_about(older, "galax")),
        Profile(10, "j@example.org", keywords=(Keyword("exoplanet"), Keyword("black holes")), max_papers=5),
    ]
    seeds = {paper_id for profile in profiles for paper_id in profile.seeds}
    window = prepare_window(papers, referenced=[paper for paper in older if paper.id in seeds])
    return window, build_digests(window, profiles, period_start=NOW, period_end=NOW, now=NOW)


def holds(word: str, text: str) -> bool:
    """Whether `text` has `word` as a word, or its plural or singular."""
    stem = re.escape(word.removesuffix("es") if word.endswith(("ches", "shes", "xes")) else word.removesuffix("s"))
    return re.search(rf"(?<!\w){stem}(e?s)?(?!\w)", text) is not None


def test_real_digests_are_sectioned_by_labels_most_of_their_papers_hold(real_digests) -> None:  # type: ignore[no-untyped-def]
    _, digests = real_digests
    named = 0
    for digest in digests:
        assert digest.picks, digest.profile.email
        if len(digest.picks) <= 5:
            assert len(digest.sections) == 1
        for section in digest.sections:
            if section.label in (MORE_PAPERS, SINGLE_SECTION):
                continue
            named += 1
            assert len(section.picks) >= 2, section.label
            texts = [fold_text(pick.paper.text) for pick in section.picks]
            for word in fold_text(section.label).split():
                if word != "of":
                    share = sum(holds(word, text) for text in texts) / len(texts)
                    assert share > 0.5, (section.label, word, share)
    assert named >= len(digests)  # most digests have named sections, some several


def test_real_digest_labels_read_as_topics(real_digests) -> None:  # type: ignore[no-untyped-def]
    window, digests = real_digests
    for digest in digests:
        keywords = {variant for keyword in digest.profile.keywords for variant in keyword_variants(keyword.term)}
        for label in {section.label for section in digest.sections} - {MORE_PAPERS, SINGLE_SECTION}:
            words = fold_text(label).split()
            assert not {words[0], words[-1]} & ENGLISH_STOP_WORDS, label
            if fold_text(label) not in keywords:  # a phrase of the papers, not the reader's own words
                assert not set(words) <= GENERIC_LABELS and words[-1] not in ADJECTIVES, label
    labels = {section.label for digest in digests for section in digest.sections}
    # The reader's own keywords name what they brought.
    assert {"Gaussian splatting", "Dark matter", "Quantum error correction"} <= labels
    assert not {name for name in window.labels if " " not in name} & GENERIC_LABELS
    assert not {name for name in window.labels if set(name.split()) <= GENERIC_LABELS}
