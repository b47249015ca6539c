"""Label phrases: what may name a section, as a reader would read it."""

from __future__ import annotations

import numpy as np

from digestd.ranking.phrases import find_phrases

FILLER_TEXTS = [
    "We propose a novel framework. Experimental results show state of the art performance.",
    "In this paper we present a new method. Extensive experiments demonstrate significant improvements.",
]


def topic_texts() -> list[str]:
    """Four papers on surface codes, three on Gaussian splatting, two on LLM agents, filler around them."""
    codes = [
        f"{verb} surface codes. We study random circuits and finite noise with neural networks."
        for verb in ("Decoding", "Simulating", "Benchmarking", "Compiling")
    ]
    splats = [
        f"Gaussian splatting for {n}. A dark image of Gaussian splatting, applied to scenes."
        for n in ("cities", "faces", "robots")
    ]
    agents = ["LLM agents call tools.", "Tool use by LLM agents in the wild."]
    return codes + splats + agents + FILLER_TEXTS * 6


def test_phrases_name_topics_never_filler_or_bare_adjectives() -> None:
    phrases = find_phrases(topic_texts())
    assert {"surface codes", "gaussian splatting", "llm agents"} <= set(phrases.names)
    words = {word for name in phrases.names for word in name.split()}
    assert not words & {"propose", "novel", "results", "experiments", "paper", "we", "the", "apply", "applied"}
    singles = {name for name in phrases.names if " " not in name}
    assert not singles & {"random", "dark", "finite", "image", "machine", "neural"}
    assert "neural networks" not in phrases.names  # too broad, though in four papers


def test_labels_keep_the_capitals_of_acronyms_as_papers_write_them() -> None:
    phrases = find_phrases(topic_texts())
    assert phrases.written("llm agents") == "LLM agents"
    assert phrases.written("surface codes") == "Surface codes"


def test_each_paper_offers_its_most_telling_phrases() -> None:
    texts = topic_texts()
    phrases = find_phrases(texts)
    first = [phrases.names[at] for at in phrases.top[0] if at >= 0]
    assert "surface codes" in first
    assert all(name.split()[0] in texts[0].lower() for name in first)


def test_phrases_are_deterministic() -> None:
    first, second = find_phrases(topic_texts()), find_phrases(list(topic_texts()))
    assert first.names == second.names and np.array_equal(first.top, second.top)
    assert find_phrases([]).names == () and find_phrases(["the and of"]).names == ()
