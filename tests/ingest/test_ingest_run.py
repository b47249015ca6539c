"""`run_sources` end to end: real loopback HTTP, real SQLite migrated by Alembic.

Every kind ingests its real sample; one paper from several sources is one paper; every
failure mode is recorded with a readable message, leaves the other sources' papers
saved and writes nothing of its own; `status` shows it all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from feed_server import FeedServer, Reply, Request, closed_port_url, own_feed, real_feed
from ingest.runs import NOW, papers, quick_fetcher, settings, state, status_text
from sqlalchemy import Engine
from sqlmodel import select

from digestd.config import DigestSettings, SourceSettings
from digestd.errors import InputError
from digestd.ingest.run import run_sources
from digestd.ingest.sources.fetch import Fetcher
from digestd.models import SentPaper
from digestd.store import open_session
from digestd.subscribers import SubscriberInput, add_subscriber


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with quick_fetcher() as client:
        yield client


def test_every_kind_ingests_its_real_sample(
    engine: Engine, server: FeedServer, fetcher: Fetcher, tmp_path: Path
) -> None:
    paper_file = tmp_path / "papers.jsonl"
    paper_file.write_text(json.dumps({"id": "2401.00001", "title": "T", "abstract": "A", "published": "2024-01-02"}))
    sources = (
        SourceSettings("lg", "arxiv-rss", url=server.add("/rss/cs.LG", Reply(own_feed("arxiv_rss2_cs.LG.xml")))),
        SourceSettings(
            "rdf", "arxiv-rss", url=server.add("/rss/cs", Reply(real_feed("arxiv_rss_legacy-rdf_cs_2018-08-30.rdf")))
        ),
        SourceSettings(
            "api",
            "arxiv-api",
            url=server.add("/api/query", Reply(real_feed("arxiv_api_atom_2026_old-style-id_astro-ph_0601001.xml"))),
            query="id_list:astro-ph/0601001",
        ),
        SourceSettings(
            "hf", "hf-daily", url=server.add("/api/daily_papers", Reply(real_feed("hf_daily_papers_2026-08-21.json")))
        ),
        SourceSettings(
            "journal", "rss", url=server.add("/journal", Reply(own_feed("journal_rss_iso-8859-1.xml"), gzip=True))
        ),
        SourceSettings(
            "oai",
            "oai-pmh",
            url=server.add("/oai2", Reply(real_feed("arxiv_oai-pmh_ListRecords_set-cs_2016-03-01.xml"))),
            query="cs",
        ),
        SourceSettings("file", "file", path=str(paper_file)),
    )
    reports = run_sources(engine, settings(*sources), now=NOW, fetcher=fetcher)
    assert [(r.source, r.error) for r in reports] == [(s.name, None) for s in sources]
    counts = {r.source: (r.seen, r.new) for r in reports}
    assert counts["lg"] == (2, 2) and counts["rdf"][0] == 111 and counts["api"] == (1, 1)
    assert counts["hf"] == (34, 17)  # two days asked, the same 17 papers served twice
    assert counts["journal"] == (4, 3)  # the arXiv-linked item is 2607.01234, already in from "lg"
    assert counts["oai"] == (1000, 1000) and counts["file"] == (1, 1)
    stored = papers(engine)
    assert stored["astro-ph/0601001"].sources == ["api"]
    assert stored["2607.01234"].sources == ["lg", "journal"]
    assert stored["2608.19880"].popularity == 163 and stored["2608.19880"].ai_keywords
    assert [h.query["date"] for h in server.hits("/api/daily_papers")] == ["2026-07-13", "2026-07-14"]
    oai_request = server.hits("/oai2")[0].query
    assert oai_request == {"verb": "ListRecords", "metadataPrefix": "arXiv", "from": "2026-07-12", "set": "cs"}
    assert state(engine, "oai").cursor == "token:1114880|1001"
    assert state(engine, "hf").cursor == "2026-07-14"
    text = status_text(engine)
    assert f"papers:      {len(stored)}" in text
    assert "  lg (arxiv-rss): last run 2026-07-14 06:00, ok, 2 read, 2 new, 0 updated" in text
    assert "oai (oai-pmh): last run 2026-07-14 06:00, ok, 1000 read, 1000 new" in text
    assert "stopped at max_results=200; the next run continues" in text


def arxiv_atom_source(server: FeedServer) -> SourceSettings:
    """The arXiv Atom listing: 2607.01234 (new) and 2605.09876 v3 (replaced, DOI 10.5555/warmup.2026.001)."""
    url = server.add("/atom", Reply(own_feed("arxiv_atom_cs.LG.xml")))
    return SourceSettings("atom", "arxiv-rss", url=url, include_replacements=True)


def journal_of_the_warmup_paper() -> bytes:
    """A journal's Atom feed whose one item is, by its DOI, arXiv paper 2605.09876."""
    return own_feed("journal_atom.xml").replace(
        b"https://doi.org/10.5555/LAB.7", b"https://doi.org/10.5555/WARMUP.2026.001"
    )


def test_one_paper_from_several_sources_and_a_new_version(engine: Engine, server: FeedServer, fetcher: Fetcher) -> None:
    v2 = real_feed("arxiv_api_atom_2026_old-style-id_astro-ph_0601001.xml")
    v2 = v2.replace(b"astro-ph/0601001v1", b"2607.01234v2").replace(
        b"Frequency of Hot Jupiters", b"Revised: Hot Jupiters"
    )
    journal = journal_of_the_warmup_paper()
    config = settings(
        arxiv_atom_source(server),
        SourceSettings("journal", "rss", url=server.add("/journal", Reply(own_feed("journal_rss_iso-8859-1.xml")))),
        SourceSettings("blog", "rss", url=server.add("/blog", Reply(journal))),
        SourceSettings("api", "arxiv-api", url=server.add("/api", Reply(v2)), query="id_list:2607.01234"),
    )
    first = {r.source: r for r in run_sources(engine, config, names=["atom"], now=NOW, fetcher=fetcher)}
    assert (first["atom"].new, first["atom"].updated) == (2, 0)
    later = NOW + timedelta(hours=1)
    reports = {
        r.source: r for r in run_sources(engine, config, names=["journal", "blog", "api"], now=later, fetcher=fetcher)
    }
    assert reports["blog"].new == 0  # its DOI is the DOI of arXiv paper 2605.09876
    assert (reports["api"].new, reports["api"].updated) == (0, 1)
    stored = papers(engine)
    paper = stored["2607.01234"]
    assert paper.sources == ["atom", "journal", "api"] and paper.version == 2
    assert paper.title.startswith("Revised: Hot Jupiters") and paper.first_seen == NOW
    assert stored["2605.09876"].sources == ["atom", "blog"]
    assert not [pid for pid in stored if pid == "doi:10.5555/warmup.2026.001"]


def test_conditional_get_and_the_empty_weekend_feed(engine: Engine, server: FeedServer, fetcher: Fetcher) -> None:
    config = settings(
        SourceSettings("lg", "arxiv-rss", url=server.add("/lg", Reply(own_feed("arxiv_rss2_cs.LG.xml"), etag='"a1"'))),
        SourceSettings(
            "weekend", "arxiv-rss", url=server.add("/weekend", Reply(own_feed("arxiv_rss2_empty_weekend.xml")))
        ),
    )
    run_sources(engine, config, now=NOW, fetcher=fetcher)
    again = {r.source: r for r in run_sources(engine, config, now=NOW + timedelta(days=1), fetcher=fetcher)}
    assert again["lg"].not_modified and "not modified since the last run" in again["lg"].summary()
    assert server.hits("/lg")[1].headers["if-none-match"] == '"a1"' and state(engine, "lg").etag == '"a1"'
    assert again["weekend"].error is None and again["weekend"].seen == 0
    text = status_text(engine)
    assert "lg (arxiv-rss): last run 2026-07-15 06:00, ok, 0 read, 0 new, 0 updated (not modified)" in text
    assert (
        "weekend (arxiv-rss): last run 2026-07-15 06:00, ok, 0 read, 0 new, 0 updated (the feed lists no papers" in text
    )
    assert "error" not in text


def _slow(request: Request) -> Reply:
    return Reply(own_feed("journal_atom.xml"), delay=1.0)


FAILURES = {
    "truncated": ("rss", Reply(own_feed("truncated.xml")), "not a well-formed feed: no element found"),
    "html": ("arxiv-rss", Reply(own_feed("error_page.html")), "the server sent an HTML page ('503 Service Temporarily"),
    "throttled": (
        "hf-daily",
        Reply(b"", status=429, headers={"Retry-After": "7200"}),
        "HTTP 429, the server asks to retry after 7200 s",
    ),
    "unavailable": ("rss", Reply(own_feed("error_page.html"), status=503), "HTTP 503 after 2 attempts"),
    "slow": ("rss", None, "no answer within 0.2 s (timeout)"),
    "api-error": ("arxiv-api", Reply(b"", status=400), "the arXiv API refused the query: incorrect id format for abc"),
    "api-html-400": ("arxiv-api", Reply(own_feed("error_page.html"), status=400), "HTTP 400 from http://127.0.0.1:"),
    "gone": (
        "rss",
        Reply(b"No such feed", status=404),
        "HTTP 404 Not Found: No such feed (hint: check the source's url)",
    ),
    "refused": ("rss", None, "cannot connect"),
    "oai-broken": ("oai-pmh", Reply(own_feed("truncated.xml")[:-40]), "not a well-formed XML document"),
}


def _failing_source(name: str, server: FeedServer) -> SourceSettings:
    kind, reply, _ = FAILURES[name]
    if name == "slow":
        return SourceSettings(name, kind, url=server.route("/slow", _slow), timeout_seconds=0.2)
    if name == "refused":
        return SourceSettings(name, kind, url=closed_port_url())
    if name == "api-error":
        reply = Reply(real_feed("arxiv_api_atom_2026_error_http400_id_abc.xml"), status=400)
    assert reply is not None
    return SourceSettings(
        name, kind, url=server.add(f"/{name}", reply), query="id_list:abc" if kind == "arxiv-api" else ""
    )


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failing_source_is_recorded_and_the_others_are_saved(
    failure: str, engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    good = SourceSettings("good", "rss", url=server.add("/good", Reply(own_feed("journal_atom.xml"))))
    bad = _failing_source(failure, server)
    config = settings(bad, good)
    reports = {r.source: r for r in run_sources(engine, config, now=NOW, fetcher=fetcher)}
    message = FAILURES[failure][2]
    assert reports["good"].error is None and reports["good"].new == 1
    assert reports[failure].error is not None and message in reports[failure].error
    assert reports[failure].summary().startswith(f"{failure}: FAILED: ")
    assert all(paper.sources == ["good"] for paper in papers(engine).values())
    recorded = state(engine, failure)
    assert recorded.last_error is not None and message in recorded.last_error
    assert recorded.last_error_at == NOW and recorded.consecutive_failures == 1 and recorded.last_success_at is None
    assert recorded.next_attempt_at is not None and recorded.next_attempt_at > NOW
    assert recorded.etag is None and recorded.cursor is None
    text = status_text(engine)
    failed = "FAILED (1 in a row, last success never), next attempt after"
    assert f"  {failure} ({bad.kind}): last run 2026-07-14 06:00, {failed}" in text
    assert "    last error 2026-07-14 06:00 (error): " in text and message in text
    assert "good (rss): last run 2026-07-14 06:00, ok, 1 read, 1 new" in text
    assert "papers:      1" in text


def test_a_retry_after_sets_the_next_attempt(engine: Engine, server: FeedServer, fetcher: Fetcher) -> None:
    config = settings(_failing_source("throttled", server))
    run_sources(engine, config, now=NOW, fetcher=fetcher)
    assert state(engine, "throttled").next_attempt_at == NOW + timedelta(seconds=7200)


def test_a_half_parsed_harvest_writes_nothing_and_keeps_the_cursor(
    engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    page = real_feed("arxiv_oai-pmh_ListRecords_set-cs_2016-03-01.xml")  # read here: a skip in the server is lost

    def pages(request: Request) -> Reply:
        return Reply(page if "resumptionToken" not in request.query else page[:900_000])

    config = settings(SourceSettings("oai", "oai-pmh", url=server.route("/oai", pages), query="cs", max_results=5000))
    (report,) = run_sources(engine, config, now=NOW, fetcher=fetcher)
    assert report.error is not None and "truncated" in report.error
    assert [h.query.get("resumptionToken") for h in server.hits("/oai")] == [None, "1114880|1001"]
    assert papers(engine) == {} and state(engine, "oai").cursor is None


def test_backoff_between_runs_force_and_recovery(engine: Engine, server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/feed", Reply(b"", status=404), Reply(own_feed("journal_atom.xml")))
    config = settings(SourceSettings("feed", "rss", url=url))
    run_sources(engine, config, now=NOW, fetcher=fetcher)
    (deferred,) = run_sources(engine, config, now=NOW + timedelta(minutes=1), fetcher=fetcher)
    assert deferred.deferred_until == NOW + timedelta(minutes=5) and len(server.hits("/feed")) == 1
    assert "not run, backing off after failures until 2026-07-14 06:05 UTC" in deferred.summary()
    (forced,) = run_sources(engine, config, now=NOW + timedelta(minutes=2), fetcher=fetcher, force=True)
    assert forced.error is None and forced.new == 1
    recovered = state(engine, "feed")
    assert recovered.consecutive_failures == 0 and recovered.next_attempt_at is None
    assert "last error 2026-07-14 06:00 (recovered since): " in status_text(engine)


def test_unknown_source_names_list_the_known_ones(engine: Engine) -> None:
    config = settings(
        SourceSettings("a", "rss", url="http://127.0.0.1:9/"), SourceSettings("b", "rss", url="http://127.0.0.1:9/")
    )
    with pytest.raises(InputError, match="unknown source 'c'; known sources: a, b"):
        run_sources(engine, config, names=["c"], now=NOW)


@pytest.mark.postgres
def test_sources_ingest_into_postgresql(postgres_url: str, server: FeedServer, fetcher: Fetcher) -> None:
    from digestd.store import make_engine, migrate

    engine = make_engine(postgres_url)
    try:
        migrate(engine)
        config = settings(
            SourceSettings("atom", "arxiv-rss", url=server.add("/atom", Reply(own_feed("arxiv_atom_cs.LG.xml")))),
            SourceSettings("journal", "rss", url=server.add("/journal", Reply(own_feed("journal_rss_iso-8859-1.xml")))),
            _failing_source("truncated", server),
        )
        reports = {r.source: r for r in run_sources(engine, config, now=NOW, fetcher=fetcher)}
        assert (reports["atom"].new, reports["journal"].new) == (1, 3) and reports["truncated"].error
        assert papers(engine)["2607.01234"].sources == ["atom", "journal"]
        assert state(engine, "truncated").consecutive_failures == 1
        assert "truncated (rss): last run 2026-07-14 06:00, FAILED (1 in a row, last success never)" in status_text(
            engine
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize("order", [("atom", "blog"), ("blog", "atom")], ids=["arxiv-first", "journal-first"])
def test_a_journal_article_and_its_arxiv_preprint_are_one_paper_in_either_order(
    order: tuple[str, str], engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    """The journal's DOI-only item and the arXiv record carrying that DOI merge whichever comes first."""
    journal = SourceSettings("blog", "rss", url=server.add("/blog", Reply(journal_of_the_warmup_paper())))
    config = settings(arxiv_atom_source(server), journal)
    first, second = order
    run_sources(engine, config, names=[first], now=NOW, fetcher=fetcher)
    (mailed,) = {"doi:10.5555/warmup.2026.001", "2605.09876"} & set(papers(engine))
    with open_session(engine) as session:  # a reader already got the paper under its first id
        reader = add_subscriber(
            session, SubscriberInput(email="ada@example.org", keywords="warmup"), defaults=DigestSettings(), now=NOW
        )
        assert reader.id is not None
        session.add(SentPaper(subscriber_id=reader.id, paper_id=mailed, sent_at=NOW))
    (later,) = run_sources(engine, config, names=[second], now=NOW + timedelta(hours=1), fetcher=fetcher)
    stored = papers(engine)
    assert "doi:10.5555/warmup.2026.001" not in stored
    with open_session(engine) as session:  # and it stays sent: never mailed again as "the preprint"
        assert list(session.scalars(select(SentPaper.paper_id))) == ["2605.09876"]
    paper = stored["2605.09876"]
    assert paper.sources == [first, second] and paper.first_seen == NOW and paper.version == 3
    assert paper.doi == "10.5555/warmup.2026.001" and paper.title == "A Revised Analysis of Learning-Rate Warmup"
    assert later.new == (1 if second == "atom" else 0)  # only 2607.01234 is new when the atom feed comes second
