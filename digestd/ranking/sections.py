"""Topic clusters of the window's papers (once per run) and digest sections built from them.

The window is clustered once (k-means on the latent points of `ranking.Space`, fixed seed) and
every cluster gets a readable label from its most distinctive terms. A digest then groups
its picks by cluster: a small digest is one section, and clusters holding a single pick
are gathered in "More papers".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

MORE_PAPERS = "More papers"
SINGLE_SECTION = "Your papers"
SMALL_DIGEST = 5  # picks; up to this many make one section
MAX_SECTIONS = 5  # topic sections before "More papers"
LABEL_TERMS = 2
MAX_CLUSTERS = 60
# Words that say nothing about a topic: LaTeX markup and the vocabulary of every abstract.
_NOT_TOPICS = frozenset(
    "mathrm mathcal mathbf mathbb textit textbf emph cdot frac langle rangle leq geq sim approx times "
    "rm mbox sqrt odot paper propose proposed method methods approach approaches results result show "
    "shows based using use new novel study studies work present presents demonstrate existing state art "
    "problem problems performance framework significantly significant improve improves improved "
    "achieve achieves including various different recent recently large work works introduce provide "
    "model models task tasks data extensive experiments available publicly github com https http www long".split()
)
_WORD = re.compile(r"^[a-z][a-z\-]*[a-z]$")


@dataclass(frozen=True, eq=False)
class Clusters:
    """Cluster number of each window paper, and each cluster's label."""

    assignment: np.ndarray
    labels: tuple[str, ...]


def cluster_papers(
    matrix: sparse.csr_matrix, points: np.ndarray, feature_names: Sequence[str], texts: Sequence[str] = ()
) -> Clusters:
    """Cluster the window's papers (TF-IDF rows and their unit latent points); deterministic."""
    n = matrix.shape[0]
    if n == 0 or matrix.shape[1] == 0:
        return Clusters(np.zeros(n, dtype=np.int64), ("",) if n else ())
    distinct = len(np.unique(np.round(points, 5), axis=0))
    k = max(1, min(round(math.sqrt(n / 2)), distinct, MAX_CLUSTERS))
    if k == 1:
        assignment = np.zeros(n, dtype=np.int64)
    else:
        assignment = KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(points).astype(np.int64)
    return Clusters(assignment, label_clusters(matrix, assignment, k, feature_names, texts))


def label_clusters(
    matrix: sparse.csr_matrix, assignment: np.ndarray, k: int, feature_names: Sequence[str], texts: Sequence[str]
) -> tuple[str, ...]:
    """A label per cluster from the terms most over-represented in it, written as its papers write them."""
    members = sparse.csr_matrix(
        (np.ones(len(assignment)), (assignment, np.arange(len(assignment)))), shape=(k, len(assignment))
    )
    sizes = np.maximum(np.asarray(members.sum(axis=1)), 1)
    means = sparse.csr_matrix(members.multiply(1 / sizes) @ matrix)
    overall = np.asarray(matrix.mean(axis=0)).ravel()
    labels = []
    for cluster in range(k):
        row = means.getrow(cluster)
        lift = row.data - overall[row.indices]
        top = row.indices[np.argsort(-lift, kind="stable")[:40]]
        written = [texts[i] for i in np.flatnonzero(assignment == cluster)[:40]] if texts else []
        labels.append(compose_label([feature_names[column] for column in top], written))
    return tuple(labels)


def compose_label(terms: Sequence[str], texts: Sequence[str] = ()) -> str:
    """A label like "Quantum error correction · Surface codes" from terms ranked best first.

    Keeps phrases of real words (no stop words, markup or filler), prefers a phrase to a
    word it contains, and never repeats a word. Acronyms keep their capitals when `texts`
    (the cluster's papers) write them so ("LLM agents", not "Llm agents").
    """
    readable = [term for term in terms if _is_readable(term)]
    # A two-word phrase beats its own single words when it is among the top terms.
    ranked = sorted(readable[:12], key=lambda term: readable.index(term) - (6 if " " in term else 0))
    chosen: list[str] = []
    used: set[str] = set()
    for term in ranked:
        words = {word.removesuffix("s") for word in term.split()}  # "agent" and "agents" are one word
        if words & used:
            continue
        chosen.append(term)
        used |= words
        if len(chosen) == LABEL_TERMS:
            break
    written = [_written_form(term, texts) for term in chosen]
    return " · ".join(term[0].upper() + term[1:] for term in written)


def _written_form(term: str, texts: Sequence[str]) -> str:
    """`term` with the capitals of its most common spelling in `texts`, for words that are not
    merely capitalised (LLM, LiDAR); other words stay lower case."""
    pattern = re.compile(r"(?<!\w)" + r"[\s-]+".join(map(re.escape, term.split())) + r"(?!\w)", re.IGNORECASE)
    forms = Counter(found.group(0) for text in texts for found in pattern.finditer(text))
    if not forms:
        return term
    words = re.split(r"[\s-]+", forms.most_common(1)[0][0])
    if len(words) != len(term.split()):
        return term
    return " ".join(word if any(c.isupper() for c in word[1:]) else word.lower() for word in words)


def _is_readable(term: str) -> bool:
    words = term.split()
    if not all(_WORD.match(word) and len(word) >= 3 and word not in ENGLISH_STOP_WORDS for word in words):
        return False
    return not all(word in _NOT_TOPICS for word in words) and words[0] not in _NOT_TOPICS


def plan_sections(rows: Sequence[int], clusters: Clusters) -> list[tuple[str, list[int]]]:
    """(label, positions in `rows`) per section, for a digest's window rows in rank order."""
    plan = plan_chunk_sections(np.zeros(len(rows), dtype=np.int64), np.asarray(rows, dtype=np.int64), clusters)
    bounds = plan.starts.tolist()
    order = plan.order.tolist()
    return [(label, order[a:b]) for label, a, b in zip(plan.labels, bounds[:-1], bounds[1:], strict=True)]


@dataclass(frozen=True, eq=False)
class SectionPlan:
    """The sections of many digests: `order[starts[s]:starts[s + 1]]` are the picks of section s."""

    order: np.ndarray  # pick numbers, section by section
    starts: np.ndarray  # len(labels) + 1 bounds into `order`
    labels: list[str]
    owners: np.ndarray  # the digest of each section, ascending


def plan_chunk_sections(owners: np.ndarray, rows: np.ndarray, clusters: Clusters) -> SectionPlan:
    """Sections of the picks of many digests at once; `owners` (ascending) says which digest each pick is
    in, and each digest's picks come in rank order.

    A digest of up to SMALL_DIGEST picks is one section, named after its commonest topic when that
    holds half the picks. A larger one gets a section per topic holding two picks or more (the first
    MAX_SECTIONS topics in rank order), then "More papers"; none such, and it is one section.
    """
    if not len(rows):
        nothing = np.zeros(0, dtype=np.int64)
        return SectionPlan(order=nothing, starts=np.zeros(1, dtype=np.int64), labels=[], owners=nothing)
    names, topic_name = _section_names(clusters)
    more = names.index(MORE_PAPERS)
    name = topic_name[clusters.assignment[rows]]
    sizes = np.bincount(owners, minlength=int(owners.max(initial=-1)) + 1)
    # Groups: (digest, topic name); `first` is where each starts, picks being in digest then rank order.
    groups, first, group_of, counts = np.unique(
        owners * len(names) + name, return_index=True, return_inverse=True, return_counts=True
    )
    group_owner, group_name = groups // len(names), groups % len(names)
    # Topic sections: groups of two picks or more, the first MAX_SECTIONS of each digest by rank.
    topical = np.flatnonzero((counts >= 2) & (group_name != more))
    topical = topical[np.argsort(first[topical], kind="stable")]
    ranks = np.arange(len(topical)) - np.searchsorted(group_owner[topical], group_owner[topical])
    section = np.full(len(groups), MAX_SECTIONS)
    section[topical[ranks < MAX_SECTIONS]] = ranks[ranks < MAX_SECTIONS]
    label = np.where(section < MAX_SECTIONS, group_name, more)
    has_topics = np.bincount(group_owner[section < MAX_SECTIONS], minlength=len(sizes)) > 0
    # Small digests: one section, named after the commonest topic (ties: the first seen) if it holds half.
    common = np.lexsort((first, -counts, group_owner))
    common = common[np.r_[True, group_owner[common][1:] != group_owner[common][:-1]]]
    small = sizes <= SMALL_DIGEST
    holds_half = (2 * counts[common] >= sizes[group_owner[common]]) & (group_name[common] != more)
    named = common[holds_half & small[group_owner[common]]]
    whole = np.full(len(sizes), len(names))  # one section: "Your papers", or the name set next
    whole[group_owner[named]] = group_name[named]
    whole[~small & has_topics] = -1  # not one section
    pick_whole = whole[owners]
    pick_section = np.where(pick_whole >= 0, 0, section[group_of.ravel()])
    pick_label = np.where(pick_whole >= 0, pick_whole, label[group_of.ravel()])
    order = np.argsort(owners * (MAX_SECTIONS + 1) + pick_section, kind="stable")
    keys = (owners * (MAX_SECTIONS + 1) + pick_section)[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    every = [*names, SINGLE_SECTION]
    return SectionPlan(
        order=order,
        starts=np.r_[starts, len(order)],
        labels=[every[at] for at in pick_label[order[starts]].tolist()],
        owners=owners[order[starts]],
    )


def _section_names(clusters: Clusters) -> tuple[list[str], np.ndarray]:
    """Distinct section names (one per label; unlabelled topics go to "More papers") and each topic's."""
    names = list(dict.fromkeys([*(label or MORE_PAPERS for label in clusters.labels), MORE_PAPERS]))
    number = {name: at for at, name in enumerate(names)}
    return names, np.array([number[label or MORE_PAPERS] for label in clusters.labels], dtype=np.int64)
