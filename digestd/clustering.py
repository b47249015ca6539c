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
    if not len(rows):
        return []
    labels = [clusters.labels[topic] or MORE_PAPERS for topic in clusters.assignment[list(rows)].tolist()]
    groups: dict[str, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(label, []).append(position)
    everything = list(range(len(rows)))
    if len(rows) <= SMALL_DIGEST:
        common = max(groups, key=lambda label: len(groups[label]))  # ties: the label seen first
        return [
            (common if 2 * len(groups[common]) >= len(rows) and common != MORE_PAPERS else SINGLE_SECTION, everything)
        ]
    kept = [label for label, members in groups.items() if len(members) >= 2 and label != MORE_PAPERS][:MAX_SECTIONS]
    if not kept:
        return [(SINGLE_SECTION, everything)]
    rest = sorted(position for label, members in groups.items() if label not in kept for position in members)
    return [(label, groups[label]) for label in kept] + ([(MORE_PAPERS, rest)] if rest else [])
