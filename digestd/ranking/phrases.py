"""The window's label phrases: what may name a digest section, found once per run.

Word sequences of one to three words that can name a topic ("surface codes", "Gaussian
splatting", "chain of thought", "few-shot learning"): within a clause, content words at
both ends, a noun at the end, no filler ("we propose", "state-of-the-art"), no bare
modifier ("Dark", "Finite") or broad noun ("Image", "Models"); in two papers or more and in
at most a fifth of the window. Each paper keeps its few most telling ones, and each phrase
a weight: how rare it is in the window (the more distinctive, the better a label).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, strip_accents_unicode

from digestd.ranking.profiles import keyword_variants

PHRASES_PER_PAPER = 5  # a paper's candidate labels, besides the keywords it matched
COMMON_SHARE = 0.2  # a phrase in more of the window's papers than this sets no topic apart
SINGLE_WORD_SHARE = 0.4  # of a phrase's weight, for a lone word: "Qubits" says less than "Surface codes"
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
_CASED = re.compile(r"\b[A-Za-z]*[A-Z][A-Za-z]*\b")


@dataclass(frozen=True, eq=False)
class Phrases:
    """The window's label phrases: each paper's best few, how much each sets a topic apart, how each is written."""

    names: tuple[str, ...]  # lower case, as found
    weights: np.ndarray  # per phrase: distinctiveness against the window (log inverse share of papers)
    top: np.ndarray  # window paper × PHRASES_PER_PAPER phrase numbers, best first, -1 padded
    spellings: dict[str, str] = field(default_factory=dict)  # lower-case word → how the window writes it ("llm": "LLM")
    keywords: dict[str, int] = field(default_factory=dict)  # keyword → the phrase it is (-1: none), as met
    labels: dict[str, str] = field(default_factory=dict, repr=False)  # phrase → `written`, as met

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
        """`phrase` as a label: capitalised, with its acronyms as the papers write them; remembered
        for the run (every section of every digest is named)."""
        label = self.labels.get(phrase)
        if label is None:
            words = " ".join(self.spellings.get(word, word) for word in phrase.split())
            label = self.labels[phrase] = words[:1].upper() + words[1:]
        return label


def find_phrases(texts: Sequence[str]) -> Phrases:
    """The label phrases of the window's papers (`texts`, title and abstract); deterministic."""
    names, counts = _count_phrases(texts)
    if not names:  # no words at all
        return Phrases((), np.zeros(0), np.full((len(texts), PHRASES_PER_PAPER), -1, dtype=np.int64))
    frequency = np.diff(counts.tocsc().indptr)  # papers holding each phrase
    words = {name: int(count) for name, count in zip(names, frequency.tolist(), strict=True) if " " not in name}
    spellings = _spellings(texts, words)
    common = COMMON_SHARE * len(texts) if len(texts) >= 20 else len(texts)
    keep = (frequency >= 2) & (frequency <= common)  # shared, and still telling
    keep[keep] = [_names_a_topic(names[at], spellings) for at in np.flatnonzero(keep).tolist()]
    keep &= ~_inside_longer(names, frequency, keep)
    columns = np.flatnonzero(keep)
    counts = counts[:, columns]
    names = [names[column] for column in columns]
    single = np.array([" " not in name for name in names], dtype=bool)
    weights = np.log(len(texts) / np.maximum(frequency[columns], 1)) * np.where(single, SINGLE_WORD_SHARE, 1.0)
    return Phrases(tuple(names), weights, _best_per_paper(counts, weights), spellings)


def _count_phrases(texts: Sequence[str]) -> tuple[list[str], sparse.csr_matrix]:
    """The candidate phrases in sorted order and paper × phrase counts: what a CountVectorizer with
    `_candidate_phrases` as analyzer gives, without its bookkeeping per phrase met (a third of the
    time of `find_phrases` on 2,000 papers)."""
    vocabulary: dict[str, int] = {}  # phrase → number, in the order first met
    indices: list[int] = []
    values: list[int] = []
    indptr = [0]
    for text in texts:
        counts = Counter(_candidate_phrases(text))
        indices += [vocabulary.setdefault(phrase, len(vocabulary)) for phrase in counts]
        values += counts.values()
        indptr.append(len(indices))
    met = list(vocabulary)
    order = sorted(range(len(met)), key=met.__getitem__)
    number = np.empty(len(met), dtype=np.int64)
    number[order] = np.arange(len(met))
    matrix = sparse.csr_matrix(
        (np.array(values, dtype=np.float32), number[indices], np.array(indptr, dtype=np.int64)),
        shape=(len(texts), len(met)),
    )
    matrix.sort_indices()
    return [met[at] for at in order], matrix


def _candidate_phrases(text: str) -> list[str]:
    """Runs of one to three words within a clause, with content words at both ends and
    nothing but "of" inside: what may name a topic. Hyphenated words are one word ("few-shot")."""
    found = []
    for clause in _CLAUSE.split(strip_accents_unicode(text.lower())):
        words = _TOKEN.findall(clause)
        edges = list(map(_is_edge, words))
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
