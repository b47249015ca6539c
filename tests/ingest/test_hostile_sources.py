"""Sources that misbehave on purpose, against real loopback servers and a real SQLite file.

A hostile or broken feed is that source's error, recorded with a short readable message;
it never stops the run, never costs unbounded time, bytes or requests, and never puts
remote text or unsafe links in front of a reader."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feed_server import FeedServer, Reply, Request, feed_server, gzip_bomb, own_feed
from ingest.runs import NOW, quick_fetcher, settings, state, status_text
from sqlalchemy import Engine

from digestd.config import IngestSettings, Settings, SourceSettings
from digestd.errors import SourceError
from digestd.ingest.run import run_sources
from digestd.ingest.sources.fetch import Fetcher, parse_retry_after

MB = 1 << 20


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with quick_fetcher() as client:
        yield client


def good_source(server: FeedServer) -> SourceSettings:
    return SourceSettings("good", "rss", url=server.add("/good", Reply(own_feed("journal_atom.xml"))))


# --- headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["99999999999999", "9" * 400, "\u00b2", "-5", "1e9", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 00 Foo 0000 99:99 GMT"],
)
def test_any_retry_after_is_that_sources_error_never_a_crash(
    value: str, engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    """`Retry-After: 99999999999999` raised OverflowError out of the run (the daemon's
    start-up catch-up died on it, and systemd restarted it into the same crash)."""
    bad = SourceSettings("busy", "rss", url=server.add("/busy", Reply(b"", status=503, headers={"Retry-After": value})))
    reports = {r.source: r for r in run_sources(engine, settings(bad, good_source(server)), now=NOW, fetcher=fetcher)}
    assert reports["good"].new == 1
    error = reports["busy"].error
    assert error is not None and "HTTP 503" in error and "internal error" not in error
    next_attempt = state(engine, "busy").next_attempt_at
    assert next_attempt is not None and NOW < next_attempt.replace(tzinfo=UTC) <= NOW + timedelta(days=7)


def test_retry_after_values_are_read_defensively() -> None:
    now = datetime(2026, 7, 14, 4, 30, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 7 ", now=now) == 7.0
    week = 7 * 24 * 3600.0
    assert parse_retry_after("99999999999999", now=now) == week  # a wait we honour is a week at most
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=now) == week
    assert parse_retry_after("Tue, 14 Jul 2026 04:29:00 GMT", now=now) == 0.0  # in the past
    for nonsense in ("\u00b2", "-5", "1e9", "soon", "Mon, 00 Foo 0000 99:99 GMT", ""):
        assert parse_retry_after(nonsense, now=now) is None


@pytest.mark.parametrize("etag", ['"caf\u00e9"', '"' + "v" * 5000 + '"'])
def test_a_validator_that_cannot_be_sent_back_is_not_kept(
    etag: str, engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    """An ETag with a non-ASCII byte was stored, then every later run failed sending it back."""
    url = server.add("/feed", Reply(own_feed("journal_atom.xml"), headers={"ETag": etag}))
    config = settings(SourceSettings("feed", "rss", url=url))
    for hour in range(2):
        (report,) = run_sources(engine, config, now=NOW + timedelta(hours=hour), fetcher=fetcher)
        assert report.error is None
    assert state(engine, "feed").etag is None and "if-none-match" not in server.hits("/feed")[1].headers
    with engine.begin() as connection:  # one stored by an older digestd is not sent either
        connection.exec_driver_sql("UPDATE source_state SET etag = ?", (etag,))
    (report,) = run_sources(engine, config, now=NOW + timedelta(hours=3), fetcher=fetcher)
    assert report.error is None and "if-none-match" not in server.hits("/feed")[2].headers


# --- time -----------------------------------------------------------------------------


def test_a_server_dripping_one_byte_at_a_time_hits_the_total_deadline(
    engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    """`timeout_seconds` bounds the gap between bytes; `deadline_seconds` bounds the request."""
    drip = Reply(own_feed("journal_atom.xml"), drip=0.02)  # about 30 s for the whole answer
    slow = SourceSettings("drip", "rss", url=server.add("/drip", drip), timeout_seconds=5, deadline_seconds=1)
    reports = {r.source: r for r in run_sources(engine, settings(slow, good_source(server)), now=NOW, fetcher=fetcher)}
    error = reports["drip"].error
    assert error is not None and "no complete answer within 1 s" in error and "deadline_seconds" in error
    assert len(server.hits("/drip")) == 1  # a request past its deadline is not tried again in the same run
    assert reports["good"].new == 1


# --- bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoded", [True, False], ids=["content-encoding", "raw-gz-body"])
def test_a_gzip_bomb_fails_with_a_bounded_read(encoded: bool, server: FeedServer) -> None:
    """128 MB of zeros in 130 KB of gzip: refused once 4 MB are unpacked, memory stays near that."""
    bomb = gzip_bomb(128)
    headers = {"Content-Encoding": "gzip"} if encoded else {"Content-Type": "application/gzip"}
    url = server.add("/bomb.xml.gz", Reply(bomb, headers=headers))
    with Fetcher(max_decompressed_bytes=4 * MB, retries=0) as client:
        tracemalloc.start()
        try:
            with pytest.raises(SourceError, match="larger than 4 MB once decompressed") as raised:
                client.fetch(url)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 * MB, f"{peak / MB:.0f} MB held while reading a bomb capped at 4 MB"
    assert raised.value.hint is not None and "max_decompressed_mb" in raised.value.hint
    assert len(server.hits("/bomb.xml.gz")) == 1


def test_a_body_larger_than_the_cap_is_refused(server: FeedServer) -> None:
    url = server.add("/big", Reply(b"<rss>" + b" " * (3 * MB) + b"</rss>"))
    with Fetcher(max_response_bytes=1 * MB, retries=0) as client:
        with pytest.raises(SourceError, match="the response is larger than 1 MB") as raised:
            client.fetch(url)
    assert raised.value.hint is not None and "max_response_mb" in raised.value.hint


def test_ingest_settings_reach_the_fetcher(engine: Engine, server: FeedServer) -> None:
    url = server.add("/bomb", Reply(gzip_bomb(16), headers={"Content-Encoding": "gzip"}))
    config = Settings(sources=(SourceSettings("bomb", "rss", url=url),), ingest=IngestSettings(max_decompressed_mb=2))
    (report,) = run_sources(engine, config, now=NOW)
    assert report.error is not None and "larger than 2 MB once decompressed" in report.error


# --- requests -------------------------------------------------------------------------

OAI_HEAD = b'<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'


def _oai_page(token: str | None) -> bytes:
    tail = f"<resumptionToken>{token}</resumptionToken>".encode() if token else b""
    return OAI_HEAD + tail + b"</ListRecords></OAI-PMH>"


def test_an_oai_pmh_repository_repeating_its_token_is_asked_twice_not_forever(
    engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    def looping(request: Request) -> Reply:
        # The same token with no records, for ever (here: until request 40, so a run that
        # does not notice still ends and the test fails instead of hanging).
        return Reply(_oai_page("same|0" if len(server.hits("/oai")) < 40 else None))

    config = settings(SourceSettings("oai", "oai-pmh", url=server.route("/oai", looping), query="cs"))
    (report,) = run_sources(engine, config, now=NOW, fetcher=fetcher)
    assert report.error is not None and "resumption token 'same|0' again" in report.error
    assert [h.query.get("resumptionToken") for h in server.hits("/oai")] == [None, "same|0"]


def test_oai_pmh_pages_per_run_are_bounded(engine: Engine, server: FeedServer, fetcher: Fetcher) -> None:
    def endless(request: Request) -> Reply:
        count = len(server.hits("/oai"))
        return Reply(_oai_page(f"t{count}" if count < 40 else None))

    source = SourceSettings("oai", "oai-pmh", url=server.route("/oai", endless), query="cs", max_pages=3)
    (report,) = run_sources(engine, settings(source), now=NOW, fetcher=fetcher)
    assert report.error is None and len(server.hits("/oai")) == 3
    assert any("stopped after 3 pages (max_pages)" in note for note in report.notes)
    assert state(engine, "oai").cursor == "token:t3"  # the next run continues where this one stopped


# --- dates ----------------------------------------------------------------------------

BAD_DATES = {
    "rss": ("journal_rss_iso-8859-1.xml", b"<pubDate>Wed, 15 Jul 2026 09:00:00 +0200</pubDate>"),
    "arxiv-rss": ("arxiv_rss2_cs.LG.xml", b"<pubDate>Tue, 14 Jul 2026 00:00:00 -0400</pubDate>"),
}


@pytest.mark.parametrize("kind", BAD_DATES)
def test_one_impossible_date_drops_that_date_not_the_feed(
    kind: str, engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    name, good_date = BAD_DATES[kind]
    content = own_feed(name)
    assert content.count(good_date) >= 1
    content = content.replace(good_date, b"<pubDate>0000-00-00T00:00:00Z</pubDate>", 1)
    config = settings(SourceSettings("feed", kind, url=server.add("/feed", Reply(content))))
    (report,) = run_sources(engine, config, now=NOW, fetcher=fetcher)
    assert report.error is None and report.new >= 2
    assert any("1 unreadable date(s) ignored" in note for note in report.notes)


# --- redirects and remote text --------------------------------------------------------


def test_a_loopback_source_may_redirect_within_loopback(engine: Engine, fetcher: Fetcher) -> None:
    with feed_server("127.0.0.1") as source, feed_server("127.0.0.2") as target:
        moved = target.add("/feed", Reply(own_feed("journal_atom.xml")))
        url = source.add("/feed", Reply(status=301, headers={"Location": moved}))
        (report,) = run_sources(engine, settings(SourceSettings("moved", "rss", url=url)), now=NOW, fetcher=fetcher)
    assert report.error is None and report.new == 1 and len(target.hits("/feed")) == 1


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://127.0.0.1/feed", "javascript:alert(1)", "data:text/xml,<rss/>", "https://"],
)
def test_a_redirect_to_another_scheme_is_refused(location: str, server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/feed", Reply(status=302, headers={"Location": location}))
    with pytest.raises(SourceError, match="redirect .* refused") as raised:
        fetcher.fetch(url)
    assert len(server.hits("/feed")) == 1 and "\n" not in raised.value.message


def test_too_many_redirects_are_an_error(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/loop", Reply(status=302, headers={"Location": "/loop"}))
    with pytest.raises(SourceError, match="more than 5 redirects"):
        fetcher.fetch(url)
    assert len(server.hits("/loop")) == 6


HOSTILE_TITLE = "\x1b[2J\x1b[31mSYSTEM\u202e COMPROMISED " + "lorem ipsum " * 400


@pytest.mark.parametrize("status", [404, 200])
def test_status_shows_only_a_short_sanitised_excerpt_of_a_remote_page(
    status: int, engine: Engine, server: FeedServer, fetcher: Fetcher
) -> None:
    """The title of the page a redirect led to ended up in `status`, escape codes and all."""
    page = f"<!DOCTYPE html><html><head><title>{HOSTILE_TITLE}</title></head><body>x</body></html>".encode()
    target = server.add("/landing", Reply(page, status=status))
    url = server.add("/feed", Reply(status=302, headers={"Location": target}))
    (report,) = run_sources(engine, settings(SourceSettings("feed", "rss", url=url)), now=NOW, fetcher=fetcher)
    assert report.error is not None
    text = status_text(engine)
    (line,) = [line for line in text.splitlines() if "last error" in line]
    assert "SYSTEM" in line and "lorem" in line
    assert not any(ord(c) < 32 or 0x202A <= ord(c) <= 0x202E for c in line)
    assert len(line) < 300 and len(state(engine, "feed").last_error or "") < 300


# --- links ----------------------------------------------------------------------------

UNSAFE_LINKS = ["javascript:alert(document.cookie)", " JaVaScRiPt:alert(1)", "data:text/html,<script>x</script>"]


def test_only_http_links_reach_the_digest(run, engine: Engine, server: FeedServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`javascript:` and `data:` links from a feed or a file are dropped at ingest and counted."""
    feed = own_feed("journal_atom.xml").replace(b"https://lab.example.org/posts/7", UNSAFE_LINKS[0].encode())
    paper_file = tmp_path / "papers.jsonl"
    paper_file.write_text(
        '{"id": "2607.04444", "title": "Retrieval-augmented decoding, again", "abstract": "Retrieval while decoding.",'
        f' "published": "2026-07-16", "abs_url": "{UNSAFE_LINKS[1]}", "pdf_url": "{UNSAFE_LINKS[2]}"}}\n'
    )
    config = settings(SourceSettings("blog", "rss", url=server.add("/blog", Reply(feed))))
    (report,) = run_sources(engine, config, now=NOW)
    assert report.new == 1 and any("1 link(s) other than http(s) dropped" in note for note in report.notes)
    imported = run("ingest", "--file", str(paper_file))
    assert imported.exit_code == 0 and "2 link(s) other than http(s) dropped" in imported.stdout
    assert run("subscribers", "add", "ada@example.org", "--keywords", "retrieval, decoding").exit_code == 0
    window = ["--since", "2026-07-16", "--until", "2026-07-16"]
    html = run("preview", "ada@example.org", *window, "--format", "html").output
    text = run("preview", "ada@example.org", *window, "--format", "text").output
    assert "Retrieval-augmented decoding, again" in html and "retrieval-augmented decoding" in html
    for output in (html, text):
        assert "javascript:" not in output.lower() and "data:" not in output
    assert 'href="https://arxiv.org/abs/2607.04444"' in html  # the paper keeps its own arXiv link
    assert 'href="https://doi.org/10.5555/lab.7"' in html


# --- the address rule -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("127.0.0.1", "127.0.0.2", True),  # a loopback source may stay on loopback (these tests' own feeds)
        ("10.1.2.3", "192.168.1.1", True),  # an intranet feed within the intranet
        ("93.184.215.14", "151.101.1.69", True),  # public to public
        ("93.184.215.14", "127.0.0.1", False),
        ("93.184.215.14", "10.0.0.5", False),
        ("93.184.215.14", "169.254.169.254", False),  # a cloud metadata service
        ("93.184.215.14", "::1", False),
        ("93.184.215.14", "::ffff:127.0.0.1", False),  # loopback dressed as IPv6
        ("93.184.215.14", "fd00::1", False),
        ("93.184.215.14", "0.0.0.0", False),
        ("2606:4700::6810:84e5", "2a04:4e42::485", True),
    ],
)
def test_the_redirect_address_rule(source: str, target: str, allowed: bool) -> None:
    from digestd.ingest.sources.network import address_refusal

    refusal = address_refusal(target, source_addresses=[source])
    assert (refusal is None) == allowed, refusal
    if refusal:
        assert target in refusal


def test_a_connection_to_a_private_address_is_refused_where_the_rule_says_so(server: FeedServer) -> None:
    """The rule is applied when connecting (after DNS), so a name that resolves to loopback is caught too."""
    import httpcore

    from digestd.ingest.sources.network import GuardedBackend, guarded

    port = int(server.base.rsplit(":", 1)[1])
    backend = GuardedBackend()
    with guarded(deadline_seconds=5, source_addresses=["93.184.215.14"]):
        with pytest.raises(SourceError, match="127.0.0.1 is not a public address"):
            backend.connect_tcp("localhost", port)
    with guarded(deadline_seconds=5, source_addresses=["127.0.0.1"]):
        stream = backend.connect_tcp("localhost", port)
        stream.close()
    assert isinstance(stream, httpcore.NetworkStream) and server.requests == []


# --- the settings ---------------------------------------------------------------------


def test_the_limits_are_settings_with_sane_defaults(tmp_path: Path) -> None:
    from digestd.config import load_settings
    from digestd.errors import ConfigError

    path = tmp_path / "digestd.toml"
    source = '[[sources]]\nname = "a"\nkind = "rss"\nurl = "http://127.0.0.1:9/"\n'
    path.write_text("[ingest]\nmax_response_mb = 5\nmax_decompressed_mb = 50\n" + source + "deadline_seconds = 60\n")
    loaded = load_settings(path, environ={})
    assert (loaded.ingest.max_response_mb, loaded.ingest.max_decompressed_mb) == (5, 50)
    assert (loaded.sources[0].deadline_seconds, loaded.sources[0].max_pages) == (60, 50)
    defaults = Settings()
    assert (defaults.ingest.max_response_mb, defaults.ingest.max_decompressed_mb) == (20, 100)
    for bad, key in [
        ("[ingest]\nmax_response_mb = 0\n", "ingest.max_response_mb = 0"),
        ("[ingest]\nmax_decompressed_mb = -1\n", "ingest.max_decompressed_mb = -1"),
        ("[ingest]\ncatch_up_wait_seconds = -1\n", "ingest.catch_up_wait_seconds = -1"),
        (source + "deadline_seconds = 0\n", "sources[a].deadline_seconds = 0.0"),
        (source + "max_pages = 0\n", "sources[a].max_pages = 0"),
    ]:
        path.write_text(bad)
        with pytest.raises(ConfigError, match=re.escape(key) + " is not allowed"):
            load_settings(path, environ={})
