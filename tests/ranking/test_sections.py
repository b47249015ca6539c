"""Section labels and grouping as a reader sees them."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from digestd.ranking.sections import (
    MORE_PAPERS,
    SINGLE_SECTION,
    Clusters,
    cluster_papers,
    compose_label,
    plan_chunk_sections,
    plan_sections,
)


def test_label_keeps_readable_phrases_without_repeating_words() -> None:
    terms = ["learning", "deep learning", "the", "mathrm", "error correction", "deep", "surface codes", "codes"]
    assert compose_label(terms) == "Deep learning · Error correction"


def test_label_does_not_repeat_a_word_in_its_plural() -> None:
    assert compose_label(["multi agent", "agents", "visual tokens", "token"]) == "Multi agent · Visual tokens"


def test_label_drops_stop_words_numbers_and_filler() -> None:
    assert compose_label(["we", "2024", "propose", "results", "x1", "galaxy clusters"]) == "Galaxy clusters"
    assert compose_label(["the", "and"]) == ""


def test_label_keeps_the_capitals_of_acronyms_as_papers_write_them() -> None:
    texts = ["LLM agents call tools.", "We study LLM Agents and Tool Use.", "Tool use by LLM agents"]
    assert compose_label(["llm agents", "tool use"], texts) == "LLM agents · Tool use"


def test_small_digest_is_one_section_labelled_by_its_main_topic() -> None:
    clusters = Clusters(np.array([0, 0, 1, 0]), ("Quantum codes", "Galaxies"))
    assert plan_sections([0, 1, 2], clusters) == [("Quantum codes", [0, 1, 2])]
    assert plan_sections([2, 0], clusters)[0][1] == [0, 1]


def test_single_picks_of_a_topic_gather_in_more_papers() -> None:
    clusters = Clusters(np.array([0, 0, 0, 1, 2, 3]), ("Quantum codes", "Galaxies", "Robots", "Proteins"))
    sections = plan_sections([0, 1, 3, 2, 4, 5], clusters)
    assert sections == [("Quantum codes", [0, 1, 3]), (MORE_PAPERS, [2, 4, 5])]


def test_digest_of_scattered_topics_is_one_section() -> None:
    clusters = Clusters(np.arange(6), tuple(f"Topic {n}" for n in "abcdef"))
    assert plan_sections([0, 1, 2, 3, 4, 5], clusters) == [(SINGLE_SECTION, [0, 1, 2, 3, 4, 5])]
    assert plan_sections([], clusters) == []


def test_sections_of_many_digests_at_once_match_each_digest_alone() -> None:
    # Two clusters share a label and one has none: sections group by label, not by cluster.
    clusters = Clusters(np.array([0, 0, 1, 1, 2, 3, 3, 4, 4, 4]), ("Codes", "Galaxies", "Codes", "", "Robots"))
    digests = [[0, 2, 4, 1], [], [5, 6, 0, 7, 8, 9, 3, 2], [9, 8, 7, 5, 6, 0, 1], [4, 2, 5, 7, 0, 9], [6]]
    owners = np.repeat(np.arange(len(digests)), [len(rows) for rows in digests])
    plan = plan_chunk_sections(owners, np.array([row for rows in digests for row in rows]), clusters)
    offsets = np.r_[0, np.cumsum([len(rows) for rows in digests])]
    bounds = plan.starts.tolist()
    together = [
        (int(owner), label, [int(at) - offsets[owner] for at in plan.order[a:b]])
        for owner, label, a, b in zip(plan.owners, plan.labels, bounds[:-1], bounds[1:], strict=True)
    ]
    alone = [(owner, label, at) for owner, rows in enumerate(digests) for label, at in plan_sections(rows, clusters)]
    assert together == alone
    assert alone[0] == (0, "Codes", [0, 1, 2, 3])  # clusters 0 and 2 make one topic
    assert (2, MORE_PAPERS, [0, 1, 2]) in alone  # the unlabelled cluster and a lone "Codes" pick


def test_clustering_is_deterministic_and_labels_each_cluster() -> None:
    rng = np.random.default_rng(1)
    centres = rng.random((3, 40)) ** 4
    rows = np.vstack([centres[n % 3] + 0.05 * rng.random(40) for n in range(30)])
    matrix = sparse.csr_matrix(rows)
    points = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    names = [f"word{chr(97 + n % 26)}{chr(97 + n // 26)}" for n in range(40)]
    first, second = cluster_papers(matrix, points, names), cluster_papers(matrix, points, names)
    assert np.array_equal(first.assignment, second.assignment) and first.labels == second.labels
    assert len(set(first.assignment[::3])) == 1 and len(set(first.assignment)) == len(first.labels) == 4
