"""Digest sections from the digest's own picks, each named by a phrase most of its papers hold.

Once per run, `find_phrases` lists the window's label phrases: word sequences of one to
three words that can name a topic ("surface codes", "Gaussian splatting", "chain of
thought"; no filler, no bare adjective) and each paper's few most telling ones.
Then, for a whole chunk of digests at once, every pick may join a section named by one of
the reader's keywords it matched (what brought it) or by one of its phrases: it joins
the candidate that the most of its digest's picks share, the reader's keywords first,
rarer (more distinctive) phrases before common ones. So every section's label occurs in
each of its papers. Sections of one paper are gathered in "More papers"; a digest of
`SMALL_DIGEST` picks or fewer is one section, named when one label fits most of it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, strip_accents_unicode

from digestd.ranking.profiles import keyword_variants

MORE_PAPERS = "More papers"
SINGLE_SECTION = "Your papers"
SMALL_DIGEST = 5  # picks; up to this many make one section
MAX_SECTIONS = 5  # topic sections before "More papers"
PHRASES_PER_PAPER = 5  # a paper's candidate labels, besides the keywords it matched
MATCHED_LABELS = 3  # keywords a paper may be filed under: the first it matched, as its reasons name them
COMMON_SHARE = 0.2  # a phrase in more of the window's papers than this sets no topic apart
SINGLE_WORD_SHARE = 0.4  # of a phrase's weight, for a lone word: "Qubits" says less than "Surface codes"
KEYWORD_WEIGHT = 1e6  # the reader's own keyword wins whenever it is shared by as many picks
# Words that never name a topic: the vocabulary of every abstract, and markup.
FILLER = frozenset(
    """mathrm mathcal mathbf mathbb textit textbf emph cdot frac langle rangle leq geq sim approx times rm mbox
    sqrt odot paper papers propose proposed proposes method methods approach approaches result results show shows
    shown using use used uses new novel study studies studied work works present presents presented demonstrate
    demonstrates existing state art problem problems performance framework frameworks significantly significant
    improve improves improved improvement achieve achieves achieved including various different recent recently
    large extensive experiments experimental available publicly github com https http www code long based apply
    applied applies application applications task tasks data dataset datasets benchmark benchmarks evaluation
    analysis effective efficiently effectively efficient robust simple key important leading promising
    challenging remaining underlying corresponding following increasing emerging existing varying widely
    widespread crucial critical main general specific particular potential possible able ability address
    addresses addressing enable enables enabling provide provides providing offer offers introduce introduces
    introducing explore explores investigate investigates consider considers obtain obtained learn learns
    learned allow allows allowing high low higher lower better best strong stronger wide range real world
    paradigm setting settings way ways number numbers terms level levels type types form forms case cases
    order time times first second third one two three four five moreover furthermore however thus also
    across within toward towards via significantly substantial substantially comprehensive respectively
    novelty insight insights aim aims goal goals need needs lack gap gaps make makes making yield yields
    outperform outperforms outperforming superior competitive state achieves compared comparison prior
    achieving instead like good remain remains relying rely alternative project page website""".split()
)
# Adjectives that cannot end a label ("Dark", "Finite", "Spiking"; but "dark matter").
MODIFIERS = frozenset(
    """dark random finite deep neural quantum multi self fine grained cross pre non semi high low small large
    open free online offline global local efficient dynamic optimal linear nonlinear complex simple spatial
    temporal visual textual generative adaptive interactive effective scalable accurate robust reliable
    consistent coherent recent current present independent dependent sufficient frequent latent persistent
    transparent relevant invariant constant dominant unified general universal standard classical modern
    strong weak interacting supervised unsupervised based driven aware guided conditioned trained fixed full
    total single multiple many several hybrid joint diverse rich extreme black white poor forward spiking
    forming preserving physical machine""".split()
)
# Nouns too broad to name a topic alone, or with only modifiers and each other ("Neural networks",
# "Image data"); with a telling word they do ("Diffusion models", "Graph neural networks").
BROAD = frozenset(
    """image images video videos model models learning network networks system systems method data language
    languages graph graphs training inference generation process processes structure structures function
    functions information features feature representation representations design control signal signals
    energy field fields theory space spaces dynamics prediction predictions approach analysis evaluation
    tool tools task tasks problem problems challenge challenges term success code codes game games life spin
    contact diffusion entropy noise error errors""".split()
)
_ADJECTIVE_ENDINGS = ("ed", "ous", "ly", "ive", "ful", "less", "able", "ible", "al", "ic", "ar", "ary")
_ADVERB_ENDINGS = (
    "ally",
    "ively",
    "ously",
    "ently",
    "antly",
    "ingly",
    "edly",
    "ably",
    "ibly",
    "arly",
    "fully",
    "ately",
)
_NOUNS_WITH_THOSE_ENDINGS = frozenset(
    """retrieval removal arrival survival trial terminal manual interval portal logic music traffic topic
    arithmetic rhetoric epidemic pandemic mechanic radar lidar grammar star seed speed bed boundary dictionary
    library summary binary vocabulary""".split()
)
_NOT_EDGES = ENGLISH_STOP_WORDS | FILLER
_NOT_INSIDE = _NOT_EDGES - {"of"}  # the one stop word a phrase may hold inside: "chain of thought"
_CLAUSE = re.compile(r"[.,;:!?()\[\]{}\"']|\s-+\s")
_TOKEN = re.compile(r"\b[^\W\d_]+(?:-[^\W\d_]+)*\b")
# Ends of hyphenated adjectives: "large-scale", "real-time", "open-source", "training-free".
_HYPHEN_TAILS = frozenset("scale world art quality cost source end free play level based aware term time".split())
_UNNAMED = {-1: MORE_PAPERS, -2: SINGLE_SECTION}
_CASED = re.compile(r"\b[A-Za-z]*[A-Z][A-Za-z]*\b")


@dataclass(frozen=True, eq=False)
class Phrases:
    """The window's label phrases: each paper's best few, how much each sets a topic apart, how each is written."""

    names: tuple[str, ...]  # lower case, as found
    weights: np.ndarray  # per phrase: distinctiveness against the window (log inverse share of papers)
    top: np.ndarray  # window paper × PHRASES_PER_PAPER phrase numbers, best first, -1 padded
    spellings: dict[str, str] = field(default_factory=dict)  # lower-case word → how the window writes it ("llm": "LLM")
    keywords: dict[str, int] = field(default_factory=dict)  # keyword → the phrase it is (-1: none), as met

    @cached_property
    def numbers(self) -> dict[str, int]:
        return {name: at for at, name in enumerate(self.names)}

    def number_of(self, keyword: str) -> int:
        """The phrase that is `keyword` (or its plural or singular), else -1; remembered for the run."""
        if keyword not in self.keywords:
            found = [self.numbers[variant] for variant in keyword_variants(keyword) if variant in self.numbers]
            self.keywords[keyword] = found[0] if found else -1
        return self.keywords[keyword]

    def written(self, phrase: str) -> str:
        """`phrase` as a label: capitalised, with its acronyms as the papers write them."""
        words = [self.spellings.get(word, word) for word in phrase.split()]
        return " ".join(words)[:1].upper() + " ".join(words)[1:]


def find_phrases(texts: Sequence[str]) -> Phrases:
    """The label phrases of the window's papers (`texts`, title and abstract); deterministic."""
    counter = CountVectorizer(
        analyzer=_candidate_phrases, min_df=2, max_df=COMMON_SHARE if len(texts) >= 20 else 1.0, dtype=np.float32
    )
    try:
        counts = sparse.csr_matrix(counter.fit_transform(texts))
    except ValueError:  # no words, or too few papers for a phrase to be shared
        return Phrases((), np.zeros(0), np.full((len(texts), PHRASES_PER_PAPER), -1, dtype=np.int64))
    names = [str(name) for name in counter.get_feature_names_out()]
    frequency = np.diff(counts.tocsc().indptr)
    spellings = _spellings(texts, dict(zip(names, frequency.tolist(), strict=True)))
    keep = np.array([_names_a_topic(name, spellings) for name in names], dtype=bool)
    keep &= ~_inside_longer(names, frequency, keep)
    columns = np.flatnonzero(keep)
    counts = counts[:, columns]
    names = [names[column] for column in columns]
    single = np.array([" " not in name for name in names], dtype=bool)
    weights = np.log(len(texts) / np.maximum(frequency[columns], 1)) * np.where(single, SINGLE_WORD_SHARE, 1.0)
    return Phrases(tuple(names), weights, _best_per_paper(counts, weights), spellings)


def _candidate_phrases(text: str) -> list[str]:
    """Runs of one to three words within a clause, with content words at both ends and
    nothing but "of" inside: what may name a topic. Hyphenated words are one word ("few-shot")."""
    found = []
    for clause in _CLAUSE.split(strip_accents_unicode(text.lower())):
        words = _TOKEN.findall(clause)
        edges = [_is_edge(word) for word in words]
        for at, word in enumerate(words):
            if not edges[at]:
                continue
            found.append(word)
            if at + 1 < len(words) and edges[at + 1]:
                found.append(f"{word} {words[at + 1]}")
            if at + 2 < len(words) and edges[at + 2] and words[at + 1] not in _NOT_INSIDE:
                found.append(f"{word} {words[at + 1]} {words[at + 2]}")
    return found


@lru_cache(maxsize=65536)
def _is_edge(word: str) -> bool:
    """Whether `word` may begin or end a phrase: not a stop word or filler ("state-of-the-art" neither)."""
    return len(word) > 1 and not all(part in _NOT_EDGES for part in word.split("-"))


def _names_a_topic(name: str, spellings: dict[str, str]) -> bool:
    """A phrase that can head a section: no two-letter word unless an acronym, a noun at its end."""
    words = name.split()
    if any(len(word) < 3 and word not in spellings for word in (words[0], words[-1])):
        return False
    last = words[-1].rpartition("-")[2]  # "fine-tuning" ends as "tuning" does, "large-scale" as "scale"
    if last in MODIFIERS or last in _HYPHEN_TAILS or all(word in BROAD or word in MODIFIERS for word in words):
        return False
    if len(words) == 1 and len(last) < 5 and words[0] not in spellings and "-" not in words[0]:
        return False
    if any(word.endswith(_ADVERB_ENDINGS) for word in words):  # "adaptively modulate"
        return False
    return last in _NOUNS_WITH_THOSE_ENDINGS or not last.endswith(_ADJECTIVE_ENDINGS) or last in spellings


def _inside_longer(names: Sequence[str], frequency: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Phrases nearly always part of a longer one ("language models" of "large language models"): the
    longer one names the topic."""
    number = {name: at for at, name in enumerate(names)}
    inside = np.zeros(len(names), dtype=bool)
    for at in np.flatnonzero(keep).tolist():
        words = names[at].split()
        for part in (" ".join(words[:-1]), " ".join(words[1:])) if len(words) > 1 else ():
            shorter = number.get(part)
            if shorter is not None and frequency[at] >= 0.8 * frequency[shorter]:
                inside[shorter] = True
    return inside


def _spellings(texts: Sequence[str], frequency: dict[str, int]) -> dict[str, str]:
    """Words that most papers holding them write with capitals inside (LLM, LiDAR, NeRF), by their lower case."""
    papers: Counter[str] = Counter()
    for text in texts:
        papers.update({word for word in _CASED.findall(text) if not word[1:].islower()})
    forms: dict[str, list[tuple[int, str]]] = {}
    for word, count in papers.items():
        forms.setdefault(word.lower(), []).append((-count, word))
    spellings = {}
    for lower, found in sorted(forms.items()):
        count, word = min(found)
        if -2 * count >= frequency.get(lower, 0) > 0:
            spellings[lower] = word
    return spellings


def _best_per_paper(counts: sparse.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """Each paper's PHRASES_PER_PAPER phrases of highest (1 + log count) × weight, best first, -1 padded."""
    top = np.full((counts.shape[0], PHRASES_PER_PAPER), -1, dtype=np.int64)
    if not counts.nnz:
        return top
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    value = (1 + np.log(counts.data)) * weights[counts.indices]
    order = np.lexsort((counts.indices, -value, rows))  # ties: the first phrase in the vocabulary
    rank = np.arange(len(order)) - counts.indptr[rows[order]]
    kept = order[rank < PHRASES_PER_PAPER]
    top[rows[kept], rank[rank < PHRASES_PER_PAPER]] = counts.indices[kept]
    return top


@dataclass(frozen=True, eq=False)
class SectionPlan:
    """The sections of many digests: `order[starts[s]:starts[s + 1]]` are the picks of section s."""

    order: np.ndarray  # pick numbers, section by section
    starts: np.ndarray  # len(labels) + 1 bounds into `order`
    labels: list[str]
    owners: np.ndarray  # the digest of each section, ascending


def plan_chunk_sections(
    owners: np.ndarray,
    rows: np.ndarray,
    phrases: Phrases,
    matched: np.ndarray | None = None,
    keywords: Sequence[str] = (),
) -> SectionPlan:
    """Sections of the picks of many digests at once. `owners` (ascending) says which digest each pick
    is in, each digest's picks in rank order; `rows` are their window rows; `matched` (pick × any
    number of columns, -1 padded) the reader's keywords each pick matched, as numbers into `keywords`.

    A digest of up to SMALL_DIGEST picks is one section, named by the label most of it holds. A larger
    one gets a section per label that two picks or more join (the first MAX_SECTIONS in rank order),
    then "More papers"; none such, and it is one section.
    """
    if not len(rows):
        nothing = np.zeros(0, dtype=np.int64)
        return SectionPlan(order=nothing, starts=np.zeros(1, dtype=np.int64), labels=[], owners=nothing)
    candidates = phrases.top[rows]
    if matched is not None and matched.shape[1]:
        first = _first_matches(matched)
        candidates = np.c_[np.where(first >= 0, first + len(phrases.names), -1), candidates]
    weights = np.r_[phrases.weights, np.full(len(keywords), KEYWORD_WEIGHT)]
    sizes = np.bincount(owners)
    chosen, fitting = _choose_labels(owners, candidates, weights, sizes)
    chosen = np.where(sizes[owners] <= SMALL_DIGEST, fitting[owners], chosen)
    # A keyword and the phrase it is ("surface codes", or "surface code") make one section.
    same = np.arange(len(weights))
    for at in np.unique(chosen[chosen >= len(phrases.names)]).tolist():
        phrase = phrases.number_of(keywords[at - len(phrases.names)])
        same[at] = at if phrase < 0 else phrase
    section, label = _number_sections(owners, np.where(chosen >= 0, same[np.maximum(chosen, 0)], chosen), sizes)
    order = np.lexsort((section, owners))
    keys = owners[order] * (MAX_SECTIONS + 1) + section[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    # Named as the reader wrote it when a keyword brought some of its papers (keywords come last).
    shown = np.where(label[order[starts]] >= 0, np.maximum.reduceat(chosen[order], starts), label[order[starts]])
    names = [*phrases.names, *keywords]
    texts = [phrases.written(names[at]) if at >= 0 else _UNNAMED[at] for at in shown.tolist()]
    return SectionPlan(order=order, starts=np.r_[starts, len(order)], labels=texts, owners=owners[order[starts]])


def _first_matches(matched: np.ndarray) -> np.ndarray:
    """The first MATCHED_LABELS keywords of each row of `matched`, left-aligned, -1 padded."""
    found = matched >= 0
    rank = np.cumsum(found, axis=1) - 1
    kept = found & (rank < MATCHED_LABELS)
    first = np.full((len(matched), MATCHED_LABELS), -1, dtype=np.int64)
    rows, columns = np.nonzero(kept)
    first[rows, rank[rows, columns]] = matched[rows, columns]
    return first


def _choose_labels(
    owners: np.ndarray, candidates: np.ndarray, weights: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pick, the label it joins (-1: none shared); per digest, the label most of it holds (-2: none)."""
    valid = candidates >= 0
    groups, group_of, shared = np.unique(
        (owners[:, None] * len(weights) + candidates)[valid], return_inverse=True, return_counts=True
    )
    group = np.full(candidates.shape, -1, dtype=np.int64)
    group[valid] = group_of.ravel()
    weight = np.where(valid, weights[np.maximum(candidates, 0)], 0.0)
    # Each pick joins its label that the most picks of its digest share (squared: bigger sections
    # first), the rarer of equally shared ones; a pick then left alone joins a section that formed.
    column = _best_column(np.where(valid, shared[group], 0), weight)
    at = np.arange(len(owners))
    joined = np.where(column >= 0, group[at, column], -1)
    taken = np.bincount(joined[joined >= 0], minlength=len(groups))
    alone = np.flatnonzero((column < 0) | (taken[joined] < 2))
    if len(alone):
        stayed = np.where(valid[alone], taken[group[alone]], 0)
        column[alone] = _best_column(stayed, weight[alone])
    chosen = np.where(column >= 0, candidates[at, column], -1)
    # A small digest's label: the best of those that more than half of its picks hold.
    group_owner, group_label = groups // len(weights), groups % len(weights)
    fits = np.flatnonzero((sizes[group_owner] <= SMALL_DIGEST) & (2 * shared > sizes[group_owner]))
    best = fits[np.lexsort((group_label[fits], -(shared[fits] ** 2) * weights[group_label[fits]], group_owner[fits]))]
    best = best[np.r_[True, group_owner[best][1:] != group_owner[best][:-1]]] if len(best) else best
    fitting = np.full(len(sizes), -2, dtype=np.int64)
    fitting[group_owner[best]] = group_label[best]
    return chosen, fitting


def _best_column(shared: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per pick, the column of its best candidate among those two picks or more share (-1: none)."""
    if not shared.shape[1]:
        return np.full(len(shared), -1, dtype=np.int64)
    score = np.where(shared >= 2, np.square(shared, dtype=np.float64) * weights, 0.0)
    column = score.argmax(axis=1)
    return np.where(score[np.arange(len(score)), column] > 0, column, -1)


def _number_sections(owners: np.ndarray, pick_label: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pick, its section's number in its digest and that section's label (-1 "More papers",
    -2 the one section of a digest with no shared label)."""
    small = sizes[owners] <= SMALL_DIGEST
    topical = np.flatnonzero((pick_label >= 0) & ~small)
    keys = owners[topical] * (int(pick_label.max(initial=0)) + 1) + pick_label[topical]
    groups, first, group_of = np.unique(keys, return_index=True, return_inverse=True)
    group_owner = owners[topical[first]]
    by_rank = np.lexsort((first, group_owner))  # each digest's sections in the rank of their best pick
    rank = np.empty(len(groups), dtype=np.int64)
    rank[by_rank] = np.arange(len(groups)) - np.searchsorted(group_owner[by_rank], group_owner[by_rank])
    section = np.full(len(owners), MAX_SECTIONS, dtype=np.int64)
    label = np.full(len(owners), -1, dtype=np.int64)
    kept = rank[group_of.ravel()] < MAX_SECTIONS
    section[topical[kept]] = rank[group_of.ravel()][kept]
    label[topical[kept]] = pick_label[topical[kept]]
    has_sections = np.bincount(group_owner[rank < MAX_SECTIONS], minlength=len(sizes)) > 0
    whole = small | ~has_sections[owners]
    section[whole] = 0
    label[whole] = np.where(small[whole], pick_label[whole], -2)
    return section, label


def plan_sections(
    rows: Sequence[int], phrases: Phrases, matched: np.ndarray | None = None, keywords: Sequence[str] = ()
) -> list[tuple[str, list[int]]]:
    """(label, positions in `rows`) per section, for one digest's window rows in rank order."""
    owners = np.zeros(len(rows), dtype=np.int64)
    plan = plan_chunk_sections(owners, np.asarray(rows, dtype=np.int64), phrases, matched, keywords)
    bounds, order = plan.starts.tolist(), plan.order.tolist()
    return [(label, order[a:b]) for label, a, b in zip(plan.labels, bounds[:-1], bounds[1:], strict=True)]
