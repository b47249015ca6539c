"""Profile parts as a user writes them: arXiv ids, BibTeX files, author names, excluded words."""

from __future__ import annotations

import pytest

from digestd.identity import normalise_arxiv_id, parse_bibtex_ids
from digestd.ranking.profiles import author_key, find_excluded, keyword_variants, same_author


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2401.01234", "2401.01234"),
        ("2401.01234v2", "2401.01234"),
        ("arXiv:2401.01234v3", "2401.01234"),
        ("https://arxiv.org/abs/2401.01234v1", "2401.01234"),
        ("https://arxiv.org/pdf/2401.01234v1.pdf", "2401.01234"),
        ("0704.0001", "0704.0001"),
        ("astro-ph/0601001", "astro-ph/0601001"),
        ("astro-ph/0601001v2", "astro-ph/0601001"),
        ("math.GT/0309136", "math.GT/0309136"),
        ("http://arxiv.org/abs/hep-th/9901001", "hep-th/9901001"),
        ("abc", None),
        ("12345678", None),
        ("10.1103/PhysRevLett.1", None),
    ],
)
def test_normalise_arxiv_id(text: str, expected: str | None) -> None:
    assert normalise_arxiv_id(text) == expected


BIBTEX = r"""
@article{vaswani2017,
  title = {Attention Is All You Need},
  journal = {arXiv preprint arXiv:1706.03762},
  year = {2017}
}
@misc{chen2020,
  title = {A Simple Framework for Contrastive Learning},
  eprint = {2002.05709v3},
  archivePrefix = {arXiv},
  primaryClass = {cs.LG}
}
@inproceedings{old,
  author = {Maldacena, Juan},
  url = {https://arxiv.org/abs/hep-th/9711200},
}
@article{notes,
  note = {Preprint at http://arxiv.org/pdf/2401.01234v2.pdf},
  eprint = "12345678", archivePrefix = "PubMed"
}
@article{again, eprint = 2002.05709}
@book{nothing, title = {No arXiv here}, doi = {10.1000/xyz}}
"""


def test_parse_bibtex_ids_finds_every_kind_of_reference_once_in_order() -> None:
    assert parse_bibtex_ids(BIBTEX) == ["1706.03762", "2002.05709", "hep-th/9711200", "2401.01234"]


def test_parse_bibtex_ids_of_a_file_without_arxiv_ids_is_empty() -> None:
    assert parse_bibtex_ids("@book{x, title={Only a book}, isbn={123}}") == []
    assert parse_bibtex_ids("") == []


@pytest.mark.parametrize(
    "variant", ["Geoffrey E. Hinton", "G. Hinton", "Hinton, Geoffrey", "Geoffrey Hinton", "G.E. Hinton", "HINTON, G."]
)
def test_author_names_match_across_initials_and_order(variant: str) -> None:
    assert same_author(author_key("Geoffrey Hinton"), author_key(variant))


@pytest.mark.parametrize(("followed", "written"), [("José Müller", "Jose Mueller"), ("Zoë Brontë", "Z. Bronte")])
def test_author_names_match_without_accents(followed: str, written: str) -> None:
    assert same_author(author_key(followed), author_key(written))


def test_author_with_another_first_initial_or_surname_does_not_match() -> None:
    assert not same_author(author_key("Geoffrey Hinton"), author_key("A. Hinton"))
    assert not same_author(author_key("Geoffrey Hinton"), author_key("Geoffrey Hilton"))


def test_excluded_words_match_whole_words_ignoring_case() -> None:
    text = "Organ segmentation on Ganymede images with a GAN and Self-Supervised pretraining"
    assert find_excluded(["gan"], text) == ["gan"]
    assert find_excluded(["organs", "gans", "mede"], text) == []
    assert find_excluded(["self supervised"], text) == ["self supervised"]
    assert find_excluded(["segmentation on"], text) == ["segmentation on"]


def test_keyword_variants_add_the_other_number_of_the_last_word() -> None:
    assert keyword_variants("Neural Networks") == ("neural networks", "neural network")
    assert keyword_variants("graph neural network") == ("graph neural network", "graph neural networks")
    assert keyword_variants("query") == ("query", "queries")
    assert keyword_variants("bias") == ("bias", "biases")
    assert keyword_variants("LLM") == ("llm",)
    assert keyword_variants("  ") == ()
