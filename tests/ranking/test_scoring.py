"""Scoring behaviour a subscriber notices, on a small hand-written window."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from digestd.ranking.digest import build_digest, build_digests, prepare_window
from digestd.records import Digest, Keyword, PaperRecord, Profile

NOW = datetime(2026, 3, 2, 8, 0)


def paper(paper_id: str, title: str, abstract: str, **fields: object) -> PaperRecord:
    return PaperRecord(id=paper_id, title=title, abstract=abstract, published=date(2026, 3, 1), **fields)  # type: ignore[arg-type]


QEC = "Quantum error correction protects logical qubits from noise using stabilizer codes and syndrome decoding."
GALAXY = "We study galaxy evolution, star formation and dark matter halos in cosmological simulations of galaxies."
CONTRASTIVE = (
    "Contrastive learning learns visual representations by pulling augmented views together in embedding space."
)
ROBOT = "Robotic grasping with a parallel gripper uses tactile sensing and reinforcement learning for manipulation."
PROTEIN = "Protein structure prediction with deep networks folds amino acid sequences into three-dimensional shapes."
WINDOW = [
    paper("2603.00001", "Surface codes for quantum error correction", QEC + " Surface codes reach high thresholds."),
    paper("2603.00002", "Decoding quantum LDPC codes", QEC + " Belief propagation decoders for LDPC codes."),
    paper("2603.00003", "Logical qubits under biased noise", QEC + " Biased noise changes the threshold of codes."),
    paper("2603.00004", "Star formation in dwarf galaxies", GALAXY + " Dwarf galaxies form stars in bursts."),
    paper("2603.00005", "Dark matter halos of spiral galaxies", GALAXY + " Rotation curves trace dark matter halos."),
    paper("2603.00006", "Galaxy mergers and quenching", GALAXY + " Mergers quench star formation in massive galaxies."),
    paper("2603.00007", "Contrastive learning with hard negatives", CONTRASTIVE + " Hard negatives sharpen the loss."),
    paper(
        "2603.00008", "Momentum encoders for contrastive learning", CONTRASTIVE + " A momentum encoder keeps a queue."
    ),
    paper("2603.00009", "Contrastive pretraining for medical images", CONTRASTIVE + " Chest X-ray medical images."),
    paper(
        "2603.00010",
        "Tactile grasping of deformable objects",
        ROBOT + " Deformable objects need gentle grasps.",
        authors=("Maria Garcia-López", "Kenji Tanaka"),
    ),  # fmt: skip
    paper("2603.00011", "Learning to grasp from demonstrations", ROBOT + " Demonstrations teach grasp poses."),
    paper(
        "2603.00012",
        "Protein folding with attention",
        PROTEIN + " Attention over residues predicts contacts.",
        authors=("Geoffrey E. Hinton",),
        categories=("q-bio.BM", "cs.LG"),
    ),  # fmt: skip
    paper(
        "2603.00013",
        "Protein design by diffusion",
        PROTEIN + " Diffusion models design new protein backbones.",
        categories=("q-bio.BM",),
    ),  # fmt: skip
]
OLD_SEED = paper(
    "2401.09999", "Fault-tolerant quantum computing with color codes", QEC + " Color codes allow transversal gates."
)


def digest_for(profile: Profile, papers: list[PaperRecord] = WINDOW, referenced: tuple = ()) -> Digest:
    window = prepare_window(papers, referenced=referenced)
    return build_digest(window, profile, period_start=NOW, period_end=NOW, now=NOW)


def ids(digest: Digest) -> list[str]:
    return [pick.paper.id for pick in digest.picks]


def test_keywords_rank_matching_papers_first_with_a_matched_reason() -> None:
    digest = digest_for(Profile(1, "a@example.org", keywords=(Keyword("contrastive learning"),), max_papers=5))
    assert set(ids(digest)[:3]) == {"2603.00007", "2603.00008", "2603.00009"}
    assert "matched: contrastive learning" in digest.picks[0].reasons


def test_excluded_word_removes_papers_even_when_they_match_keywords() -> None:
    profile = Profile(1, "a@example.org", keywords=(Keyword("contrastive learning"),), excluded=("Medical",))
    digest = digest_for(profile)
    assert "2603.00009" not in ids(digest)
    assert all("medical" not in pick.paper.text.lower() for pick in digest.picks)


def test_papers_already_sent_never_come_again() -> None:
    profile = Profile(
        1, "a@example.org", keywords=(Keyword("contrastive learning"),), already_sent=frozenset({"2603.00007"})
    )
    assert "2603.00007" not in ids(digest_for(profile))


def test_seed_outside_the_window_pulls_its_topic_up_with_a_reason() -> None:
    digest = digest_for(Profile(1, "a@example.org", seeds=(OLD_SEED.id,), max_papers=3), referenced=(OLD_SEED,))
    assert set(ids(digest)) == {"2603.00001", "2603.00002", "2603.00003"}
    assert any(reason.startswith("close to your seed paper: Fault-tolerant") for reason in digest.picks[0].reasons)


def test_disliked_papers_push_their_topic_down() -> None:
    plain = Profile(1, "a@example.org", keywords=(Keyword("learning"),), max_papers=13)
    disliking = Profile(1, "a@example.org", keywords=(Keyword("learning"),), disliked=("2603.00011",), max_papers=13)
    before, after = digest_for(plain), digest_for(disliking)
    assert "2603.00011" in ids(before) and "2603.00011" not in ids(after)
    score = {pick.paper.id: pick.score for pick in after.picks}
    assert score.get("2603.00010", 0) < {pick.paper.id: pick.score for pick in before.picks}["2603.00010"]
    assert {"2603.00007", "2603.00008"} <= set(ids(after))  # other topics stay


def test_followed_author_is_boosted_across_spellings_with_a_reason() -> None:
    for spelling in ("G. Hinton", "Hinton, Geoffrey", "Geoffrey Hinton"):
        profile = Profile(1, "a@example.org", keywords=(Keyword("galaxy"),), authors=(spelling,), max_papers=4)
        digest = digest_for(profile)
        pick = next(pick for pick in digest.picks if pick.paper.id == "2603.00012")
        assert f"by {spelling}" in pick.reasons
    accents = digest_for(Profile(1, "a@example.org", authors=("M. Garcia-Lopez",)))
    assert ids(accents)[0] == "2603.00010"


def test_category_boost_and_filter() -> None:
    boosted = digest_for(Profile(1, "a@example.org", keywords=(Keyword("protein"),), categories=("cs.LG",)))
    assert ids(boosted)[0] == "2603.00012"
    assert "in your category cs.LG" in boosted.picks[0].reasons
    only = digest_for(
        Profile(1, "a@example.org", keywords=(Keyword("protein"),), categories=("q-bio",), category_filter=True)
    )
    assert set(ids(only)) == {"2603.00012", "2603.00013"}


def test_a_chosen_category_needs_some_text_evidence_unless_it_is_all_the_profile_asks_for() -> None:
    wordless = Profile(1, "a@example.org", keywords=(Keyword("learning"),), categories=("q-bio",), category_filter=True)
    assert digest_for(wordless).is_empty  # neither protein paper says "learning"
    alone = digest_for(Profile(1, "a@example.org", categories=("q-bio",)))
    assert set(ids(alone)) == {"2603.00012", "2603.00013"}
    assert all("in your category q-bio.BM" in pick.reasons for pick in alone.picks)


def test_max_papers_and_min_score_are_respected() -> None:
    profile = Profile(1, "a@example.org", keywords=(Keyword("codes"), Keyword("galaxies")), max_papers=2)
    assert len(digest_for(profile).picks) == 2
    strict = Profile(1, "a@example.org", keywords=(Keyword("codes"),), min_score=0.2)
    picks = digest_for(strict).picks
    assert picks and all(pick.score > 0.2 for pick in picks)
    assert digest_for(Profile(1, "a@example.org", keywords=(Keyword("codes"),), min_score=5.0)).is_empty
    assert digest_for(Profile(1, "a@example.org", seeds=("2603.00001",), liked=("2603.00004",), min_score=5.0)).is_empty


def test_near_duplicates_do_not_fill_the_digest() -> None:
    copies = [
        paper(f"2603.0010{n}", f"Contrastive learning with hard negatives, take {n}", CONTRASTIVE + f" Version {n}.")
        for n in range(5)
    ]
    digest = digest_for(
        Profile(1, "a@example.org", keywords=(Keyword("contrastive learning"),), max_papers=4), WINDOW + copies
    )
    assert sum(pick.paper.id.startswith("2603.0010") for pick in digest.picks) <= 2
    # The room left is not filled with papers that do not match: three distinct papers match.
    assert {"2603.00008", "2603.00009"} <= set(ids(digest)) and len(digest.picks) == 3


def test_enough_likes_train_a_model_without_warnings() -> None:
    liked = ("2603.00004", "2603.00005", "2603.00006", "2603.00001", "2603.00002")
    digest = digest_for(Profile(1, "a@example.org", liked=liked, disliked=("2603.00007",), max_papers=4))
    assert ids(digest)[0] in {"2603.00003", *liked}
    assert all(pick.reasons for pick in digest.picks)


def test_profile_without_interests_gets_an_empty_digest() -> None:
    assert digest_for(Profile(1, "a@example.org")).is_empty


def test_every_pick_has_a_reason() -> None:
    profiles = [
        Profile(1, "a@example.org", keywords=(Keyword("contrastive learning"), Keyword("robotics")), max_papers=13),
        Profile(2, "b@example.org", seeds=("2603.00004",), max_papers=13),
        Profile(3, "c@example.org", categories=("q-bio.BM",)),
    ]
    window = prepare_window(WINDOW)
    for digest in build_digests(window, profiles, period_start=NOW, period_end=NOW, now=NOW):
        assert digest.picks
        assert all(pick.reasons and all(pick.reasons) for pick in digest.picks)


def test_feedback_lifts_a_close_paper_only_beside_papers_with_evidence_and_says_which() -> None:
    two = digest_for(Profile(1, "a@example.org", keywords=(Keyword("surface codes"), Keyword("LDPC codes"))))
    assert ids(two)[:2] == ["2603.00001", "2603.00002"] or ids(two)[:2] == ["2603.00002", "2603.00001"]
    assert ids(two)[2:] == ["2603.00003"]  # the same topic, neither phrase: a third of the digest
    (reason,) = two.picks[2].reasons
    assert reason in {"close to: Surface codes for quantum error correction", "close to: Decoding quantum LDPC codes"}
    one = digest_for(Profile(1, "a@example.org", keywords=(Keyword("surface codes"),)))
    assert ids(one) == ["2603.00001"]  # lifting a second paper would make it half the digest
    assert digest_for(Profile(1, "a@example.org", keywords=(Keyword("coral reefs"),))).is_empty


def test_matched_names_only_keywords_that_occur_as_phrases() -> None:
    # "logical qubits from noise": the words of "logical qubits noise", and its bigrams once
    # stop words are dropped, but not the phrase.
    profile = Profile(1, "a@example.org", keywords=(Keyword("logical qubits noise"), Keyword("surface codes")))
    digest = digest_for(profile)
    assert ids(digest) == ["2603.00001"]
    assert digest.picks[0].reasons == ("matched: surface codes",)


BOILERPLATE = "We propose a novel framework and show with extensive experiments that it outperforms strong baselines. "


def test_a_paper_that_shares_only_the_weeks_common_words_with_a_seed_is_not_sent() -> None:
    # Every paper of this week carries the same boilerplate sentence, and so does the seed: a paper
    # that is mostly boilerplate is close to the seed in words, but no closer than to every other paper.
    papers = [replace(p, abstract=f"{p.abstract} {BOILERPLATE}") for p in WINDOW]
    generic = paper("2603.00099", "A novel framework for codes", f"{BOILERPLATE * 2} We study noise in codes.")
    seed = replace(OLD_SEED, abstract=f"{OLD_SEED.abstract} {BOILERPLATE}")
    digest = digest_for(Profile(1, "a@example.org", seeds=(seed.id,), max_papers=6), [*papers, generic], (seed,))
    assert ids(digest) == ["2603.00001", "2603.00002", "2603.00003"]


def test_a_paper_close_to_one_seed_of_a_large_library_is_sent() -> None:
    # A reader imports a bibliography of twelve papers on as many topics; one of them is on error
    # correction. This week's error-correction papers are close to that one seed, and to none of the
    # others: they still come, not averaged away by the rest of the library.
    topics = [
        "Medieval trade routes across the Hanseatic League and their ports.",
        "Sourdough fermentation by wild yeasts and lactic acid bacteria.",
        "Coral reef bleaching under marine heatwaves in the Pacific.",
        "Monetary policy transmission through bank lending in small economies.",
        "Volcanic eruption forecasting from seismic tremor and gas emissions.",
        "Jazz improvisation and harmonic substitution in bebop solos.",
        "Soil fertility and crop rotation on smallholder farms.",
        "Sprint performance of Olympic athletes and muscle fibre types.",
        "Roman aqueduct engineering and the hydraulics of siphons.",
        "Clinical trials of statins for cardiovascular outcomes in older patients.",
        "Phonological change in Romance languages over two millennia.",
    ]
    library = [OLD_SEED] + [paper(f"2301.{n:05d}", text.split(" ")[0], text) for n, text in enumerate(topics)]
    profile = Profile(1, "a@example.org", seeds=tuple(seed.id for seed in library), max_papers=5)
    assert {"2603.00001", "2603.00002", "2603.00003"} <= set(ids(digest_for(profile, referenced=tuple(library))))
