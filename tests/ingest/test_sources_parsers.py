"""Each source kind parses its real sample (../shared/data/feeds) and our own fixtures.

Pure functions over bytes: no server, no database."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime

import pytest
from feed_server import own_feed, real_feed

from digestd.errors import SourceError
from digestd.identity import arxiv_id_from_link, canonical_id, normalise_doi, split_arxiv_id
from digestd.ingest.sources.arxiv_api import parse_api_response, query_params
from digestd.ingest.sources.arxiv_rss import parse_arxiv_listing
from digestd.ingest.sources.hf_daily import days_to_fetch, parse_daily_papers
from digestd.ingest.sources.oai_pmh import parse_list_records
from digestd.ingest.sources.rss import parse_rss

# --- identity ---------------------------------------------------------------------------


def test_canonical_ids_for_new_and_old_style_arxiv_ids_dois_and_titles() -> None:
    assert split_arxiv_id("oai:arXiv.org:astro-ph/0601001v3") == ("astro-ph/0601001", 3)
    assert split_arxiv_id("http://arxiv.org/abs/2401.01234v2") == ("2401.01234", 2)
    assert arxiv_id_from_link("https://arxiv.org/pdf/1111.2011v2.pdf") == ("1111.2011", 2)
    assert arxiv_id_from_link("https://journal.example.org/2401.01234") is None
    assert normalise_doi("https://doi.org/10.1103/PhysRevB.85.115117") == "10.1103/physrevb.85.115117"
    assert canonical_id(doi="http://dx.doi.org/10.1103/PhysRevB.85.115117") == "doi:10.1103/physrevb.85.115117"
    assert canonical_id(title="Hello,  World!") == canonical_id(title="hello world")


# --- arXiv API --------------------------------------------------------------------------


def test_api_2016_format_with_doi_and_primary_category() -> None:
    page = parse_api_response(real_feed("arxiv_api_atom_legacy-2016_id_list_1111.2011v2.xml"), source="api")
    (paper,) = page.records
    assert (paper.id, paper.version) == ("1111.2011", 2)
    assert paper.title == "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    assert paper.authors == ("James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic")
    assert paper.categories == ("cond-mat.str-el", "cond-mat.stat-mech")
    assert paper.primary_category == "cond-mat.str-el"
    assert paper.doi == "10.1103/physrevb.85.115117"
    assert paper.published == date(2011, 11, 8)
    assert paper.updated == datetime(2012, 4, 2, 12, 38, 54, tzinfo=UTC)
    assert paper.abstract.startswith("Theoretical description of anisotropic systems")
    assert paper.pdf_url == "http://arxiv.org/pdf/1111.2011v2"


def test_api_2016_search_page_reports_the_total() -> None:
    page = parse_api_response(real_feed("arxiv_api_atom_legacy-2016_search_au-del_maestro.xml"), source="api")
    assert (len(page.records), page.total, page.start) == (10, 31, 0)
    assert all("Del Maestro" in " ".join(p.authors) for p in page.records)


def test_api_2026_format_and_an_old_style_id() -> None:
    page = parse_api_response(real_feed("arxiv_api_atom_2026_old-style-id_astro-ph_0601001.xml"), source="api")
    (paper,) = page.records
    assert (paper.id, paper.version, paper.primary_category) == ("astro-ph/0601001", 1, "astro-ph")
    assert paper.title.startswith("Frequency of Hot Jupiters and Very Hot Jupiters")
    assert paper.authors == ("Andrew Gould", "Susan Dorsher", "B. Scott Gaudi", "Andrzej Udalski")
    assert paper.abs_url == "https://arxiv.org/abs/astro-ph/0601001v1"
    assert paper.published == date(2006, 1, 2)


def test_api_2026_search_of_100_and_two_ids_of_which_one_is_invalid() -> None:
    search = parse_api_response(real_feed("arxiv_api_atom_2026_search_testing_max100.xml"), source="api")
    assert len(search.records) == 100 and len({p.id for p in search.records}) == 100
    assert all(p.title and p.abstract and p.authors and p.categories for p in search.records)
    assert "\n" not in search.records[0].abstract
    two = parse_api_response(real_feed("arxiv_api_atom_2026_id_list_two_ids.xml"), source="api")
    assert [p.id for p in two.records] == ["1707.08567"]


def test_api_empty_result_is_no_papers_and_the_error_feed_is_an_error() -> None:
    empty = parse_api_response(real_feed("arxiv_api_atom_2026_empty_result_id_0000.0000.xml"), source="api")
    assert (empty.records, empty.total) == ([], 0)
    with pytest.raises(SourceError, match="the arXiv API refused the query: incorrect id format for abc"):
        parse_api_response(real_feed("arxiv_api_atom_2026_error_http400_id_abc.xml"), source="api")


def test_api_query_parameters() -> None:
    assert query_params("id_list:2401.01234, astro-ph/0601001", start=0, page_size=10) == {
        "start": "0",
        "max_results": "10",
        "id_list": "2401.01234,astro-ph/0601001",
    }
    assert query_params("cat:cs.LG", start=100, page_size=100)["sortBy"] == "submittedDate"


# --- OAI-PMH ----------------------------------------------------------------------------


def test_oai_pmh_page_of_1000_records_with_resumption_token() -> None:
    page = parse_list_records(real_feed("arxiv_oai-pmh_ListRecords_set-cs_2016-03-01.xml"), source="oai")
    assert len(page.records) == 1000 and page.token == "1114880|1001"
    first = page.records[0]
    assert first.id == "0704.0002" and first.title == "Sparsity-certifying Graph Decompositions"
    assert first.authors == ("Ileana Streinu", "Louis Theran")
    assert first.categories == ("math.CO", "cs.CG") and first.primary_category == "math.CO"
    assert first.published == date(2007, 3, 30)
    assert first.abstract.startswith("We describe a new algorithm, the $(k,\\ell)$-pebble game with colors")
    assert page.records[1].doi == "10.1063/1.2779138"


def test_oai_pmh_no_records_match_is_empty_and_other_errors_are_errors() -> None:
    head = b'<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
    empty = parse_list_records(head + b'<error code="noRecordsMatch">none</error></OAI-PMH>', source="oai")
    assert empty.records == [] and empty.token is None
    with pytest.raises(SourceError, match="badResumptionToken: expired"):
        parse_list_records(head + b'<error code="badResumptionToken">expired</error></OAI-PMH>', source="oai")


# --- Hugging Face -----------------------------------------------------------------------


def test_hf_daily_2024_shape() -> None:
    papers = parse_daily_papers(real_feed("hf_daily_papers_2024-05-27.json"), source="hf")
    assert len(papers) == 13
    first = papers[0]
    assert first.id == "2405.15738" and first.popularity == 32
    assert first.title == "ConvLLaVA: Hierarchical Backbones as Visual Encoder for Large Multimodal Models"
    assert first.authors[:2] == ("Chunjiang Ge", "Sijie Cheng") and len(first.authors) == 9
    assert first.published == date(2024, 5, 24)
    assert first.ai_summary is None and first.ai_keywords == ()


def test_hf_daily_2026_shape_keeps_ai_summary_and_keywords() -> None:
    papers = parse_daily_papers(real_feed("hf_daily_papers_2026-08-21.json"), source="hf")
    assert len(papers) == 17
    first = papers[0]
    assert (first.id, first.popularity, first.published) == ("2608.19880", 163, date(2026, 8, 20))
    assert first.ai_summary and first.ai_summary.startswith("EnvHarness and EnvRigger")
    assert "EnvRigger" in first.ai_keywords
    assert first.abstract.startswith("LLM agents learn by interacting with environments")


def test_hf_days_to_fetch() -> None:
    today = date(2026, 8, 21)
    assert days_to_fetch(None, today) == [date(2026, 8, 20), today]
    assert days_to_fetch("2026-08-21", today) == [today]
    assert len(days_to_fetch("2026-01-01", today)) == 7


# --- arXiv listing feeds ----------------------------------------------------------------


def test_current_rss_feed_with_announce_types_and_options() -> None:
    content = own_feed("arxiv_rss2_cs.LG.xml")
    default = parse_arxiv_listing(content, source="rss")
    assert [p.id for p in default.records] == ["2607.01234", "2607.01500"] and default.skipped == 2
    only_new = parse_arxiv_listing(content, source="rss", include_cross_lists=False)
    assert [p.id for p in only_new.records] == ["2607.01234"]
    everything = parse_arxiv_listing(content, source="rss", include_replacements=True)
    assert [p.id for p in everything.records] == ["2607.01234", "2607.01500", "2605.09876", "hep-th/9901001"]
    paper = everything.records[0]
    assert paper.title == "Sparse Gradient Routing for Mixture-of-Experts Training"
    assert paper.abstract.startswith("We study how gradients flow") and "Announce Type" not in paper.abstract
    assert paper.authors == ("Ada Lovelace", "Grace Hopper", "Alan Turing")
    assert paper.categories == ("cs.LG", "cs.AI") and paper.primary_category == "cs.LG"
    assert (paper.version, paper.published) == (1, date(2026, 7, 14))
    assert everything.records[1].authors == ("Emmy Noether", "Sofia Kovalevskaya")
    assert (everything.records[2].version, everything.records[3].version) == (3, 2)
    assert all("arXiv:" not in p.abstract for p in everything.records)


def test_current_atom_feed() -> None:
    page = parse_arxiv_listing(own_feed("arxiv_atom_cs.LG.xml"), source="atom", include_replacements=True)
    assert [p.id for p in page.records] == ["2607.01234", "2605.09876"]
    assert page.records[0].authors == ("Ada Lovelace", "Grace Hopper", "Alan Turing")
    assert page.records[1].doi == "10.5555/warmup.2026.001" and page.records[1].version == 3
    assert page.records[1].abstract.startswith("We revisit learning-rate warmup")


def test_empty_weekend_feed_is_empty_not_an_error() -> None:
    page = parse_arxiv_listing(own_feed("arxiv_rss2_empty_weekend.xml"), source="rss")
    assert page.records == [] and page.empty


def test_legacy_rdf_feed() -> None:
    content = real_feed("arxiv_rss_legacy-rdf_cs_2018-08-30.rdf")
    everything = parse_arxiv_listing(content, source="rdf", include_replacements=True)
    assert len(everything.records) == 185
    first = everything.records[0]
    assert first.id == "1808.09955" and first.version == 1
    assert first.title == "QuasarNET: Human-level spectral classification and redshifting with Deep Neural Networks"
    assert first.authors == ("Nicolas Busca", "Christophe Balland")
    assert first.categories == ("astro-ph.IM",) and first.abstract.startswith("We introduce QuasarNET")
    assert "<p>" not in first.abstract and first.published == date(2018, 8, 31)
    new_only = parse_arxiv_listing(content, source="rdf", include_cross_lists=False)
    assert 0 < len(new_only.records) < len(everything.records)
    assert {p.id for p in new_only.records} <= {p.id for p in everything.records}


def test_legacy_rdf_cross_lists_are_those_from_another_archive() -> None:
    """The legacy feed never says "CROSS LISTED": a paper whose primary category is outside the
    feed's own (`cs`) is a cross-list, and `include_cross_lists = false` leaves it out."""
    content = real_feed("arxiv_rss_legacy-rdf_cs_2018-08-30.rdf")
    default = parse_arxiv_listing(content, source="rdf")
    new_only = parse_arxiv_listing(content, source="rdf", include_cross_lists=False)
    assert "1808.09955" in {p.id for p in default.records}  # QuasarNET, primary astro-ph.IM
    assert new_only.records and all((p.primary_category or "").startswith("cs.") for p in new_only.records)
    crossed = {p.id for p in default.records} - {p.id for p in new_only.records}
    assert crossed == {
        "1808.09955",
        "1808.10011",
        "1808.10026",
        "1808.10056",
        "1808.10078",
        "1808.10375",
        "1808.10387",
        "1808.10430",
    }
    everything = parse_arxiv_listing(content, source="rdf", include_replacements=True)
    replacements = parse_arxiv_listing(content, source="rdf", include_cross_lists=False, include_replacements=True)
    assert "1309.3014" in {p.id for p in everything.records} and "1309.3014" not in {p.id for p in replacements.records}


# --- any RSS/Atom -----------------------------------------------------------------------


def test_iso_8859_1_journal_feed_with_dois_and_an_arxiv_link() -> None:
    content = own_feed("journal_rss_iso-8859-1.xml")
    assert b'encoding="ISO-8859-1"' in content and "é".encode("latin-1") in content
    papers = parse_rss(content, source="journal").records
    assert [p.id for p in papers[:3]] == ["doi:10.5555/jde.2026.042", "doi:10.5555/jde.2026.043", "2607.01234"]
    assert papers[0].title == "Étude des réseaux de neurones à mémoire"
    assert papers[0].authors == ("Françoise Barré-Sinoussi", "Jürgen Müller")
    assert papers[0].categories == ("Apprentissage automatique",)
    assert papers[0].abstract == "Nous étudions les réseaux à mémoire externe et leur capacité."
    assert papers[0].published == date(2026, 7, 15)
    assert papers[3].id.startswith("title:") and papers[3].abstract == ""


def test_atom_blog_feed_with_doi_link_and_tags() -> None:
    (paper,) = parse_rss(own_feed("journal_atom.xml"), source="blog").records
    assert paper.id == "doi:10.5555/lab.7" and paper.categories == ("nlp", "retrieval")
    assert paper.authors == ("Rosalind Franklin", "Barbara McClintock")
    assert paper.abstract == "We describe a decoder that retrieves passages while it writes."
    assert paper.updated == datetime(2026, 7, 16, 9, 30, tzinfo=UTC)


# --- broken documents -------------------------------------------------------------------

PARSERS = {
    "arxiv-api": lambda content: parse_api_response(content, source="s"),
    "oai-pmh": lambda content: parse_list_records(content, source="s"),
    "arxiv-rss": lambda content: parse_arxiv_listing(content, source="s"),
    "rss": lambda content: parse_rss(content, source="s"),
}


@pytest.mark.parametrize("kind", PARSERS)
def test_truncated_xml_is_a_readable_error(kind: str) -> None:
    with pytest.raises(SourceError, match="truncated") as raised:
        PARSERS[kind](own_feed("truncated.xml"))
    assert raised.value.message.startswith("source s: not a well-formed")


@pytest.mark.parametrize("kind", [*PARSERS, "hf-daily"])
def test_html_error_page_is_named_as_such(kind: str) -> None:
    parse = PARSERS.get(kind, lambda content: parse_daily_papers(content, source="s"))
    with pytest.raises(SourceError, match="HTML page \\('503 Service Temporarily Unavailable'\\) instead of a feed"):
        parse(own_feed("error_page.html"))


def test_a_gzip_body_without_content_encoding_is_unpacked() -> None:
    page = parse_api_response(gzip.compress(real_feed("arxiv_api_atom_2026_id_list_two_ids.xml")), source="s")
    assert [p.id for p in page.records] == ["1707.08567"]


def test_broken_json_and_wrong_shapes() -> None:
    with pytest.raises(SourceError, match="not valid JSON"):
        parse_daily_papers(b'[{"paper": {"id": "2405.1', source="hf")
    with pytest.raises(SourceError, match="expected a JSON list"):
        parse_daily_papers(b'{"papers": []}', source="hf")
    with pytest.raises(SourceError, match="expected an arXiv API Atom feed"):
        parse_api_response(own_feed("arxiv_rss2_cs.LG.xml"), source="s")
    with pytest.raises(SourceError, match="empty"):
        parse_rss(b"  ", source="s")


def test_xml_declared_iso_8859_1_is_read_by_its_declaration() -> None:
    text = real_feed("arxiv_api_atom_2026_old-style-id_astro-ph_0601001.xml").decode("utf-8")
    text = text.replace("encoding='UTF-8'", "encoding='ISO-8859-1'").replace("Andrzej Udalski", "Andrzej Udalskié")
    (paper,) = parse_api_response(text.encode("iso-8859-1"), source="api").records
    assert paper.authors[-1] == "Andrzej Udalskié"


def test_an_arxiv_api_source_needs_a_query() -> None:
    from digestd.config import Settings, SourceSettings, validate_settings
    from digestd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sources\[api\].query is missing"):
        validate_settings(Settings(sources=(SourceSettings("api", "arxiv-api"),)))


def test_hf_daily_upvotes_that_are_not_a_count_are_left_out() -> None:
    content = b'[{"paper": {"id": "2405.15738", "title": "T", "summary": "A", "upvotes": Infinity}}]'
    (paper,) = parse_daily_papers(content, source="hf")
    assert paper.popularity is None
