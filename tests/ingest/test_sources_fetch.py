"""The polite fetcher against a real HTTP server on 127.0.0.1: headers, conditional GET,
gzip, Retry-After, backoff, timeouts, and the spacing of requests to the arXiv API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from feed_server import FeedServer, Reply, Request, closed_port_url, own_feed, real_feed

from digestd.config import SourceSettings
from digestd.errors import SourceError
from digestd.ingest.sources.arxiv_api import fetch_arxiv_api
from digestd.ingest.sources.fetch import Fetcher, RetryLaterError, parse_retry_after, user_agent
from digestd.ingest.sources.harvest import Harvest


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(contact="ops@example.org", polite_interval=0.2, backoff_seconds=0.05, retries=2) as client:
        yield client


def test_user_agent_names_digestd_and_the_contact(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/feed", Reply(b"<rss/>"))
    assert fetcher.fetch(url).content == b"<rss/>"
    agent = server.hits("/feed")[0].headers["user-agent"]
    assert agent.startswith("digestd/") and "mailto:ops@example.org" in agent
    assert "no-contact-configured" in user_agent("")


def test_conditional_get_turns_into_304(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/feed", Reply(b"<rss/>", etag='"v1"', headers={"Last-Modified": "Tue, 14 Jul 2026 04:30:00 GMT"}))
    first = fetcher.fetch(url)
    assert (first.status, first.etag, first.last_modified) == (200, '"v1"', "Tue, 14 Jul 2026 04:30:00 GMT")
    second = fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.content == b""
    headers = server.hits("/feed")[1].headers
    assert headers["if-none-match"] == '"v1"' and headers["if-modified-since"] == "Tue, 14 Jul 2026 04:30:00 GMT"


def test_gzip_encoded_responses_are_decoded(server: FeedServer, fetcher: Fetcher) -> None:
    body = own_feed("arxiv_rss2_cs.LG.xml")
    url = server.add("/gz", Reply(body, gzip=True))
    assert fetcher.fetch(url).content == body
    assert "gzip" in server.hits("/gz")[0].headers["accept-encoding"]


def test_429_retry_after_is_honoured(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/busy", Reply(b"slow down", status=429, headers={"Retry-After": "1"}), Reply(b"<rss/>"))
    assert fetcher.fetch(url).content == b"<rss/>"
    first, second = server.hits("/busy")
    assert second.at - first.at >= 0.95


def test_503_is_retried_with_backoff_then_given_up(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/flaky", Reply(b"", status=503), Reply(b"<rss/>"))
    assert fetcher.fetch(url).content == b"<rss/>"
    down = server.add("/down", Reply(b"", status=503))
    with pytest.raises(RetryLaterError, match="HTTP 503 after 3 attempts"):
        fetcher.fetch(down)
    assert len(server.hits("/down")) == 3


def test_a_long_retry_after_ends_the_run_and_says_when(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.add("/later", Reply(b"", status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(RetryLaterError, match="retry after 3600 s") as raised:
        fetcher.fetch(url)
    assert raised.value.retry_after == 3600 and len(server.hits("/later")) == 1


def test_retry_after_as_an_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 7, 14, 4, 30, tzinfo=UTC)
    assert parse_retry_after("Tue, 14 Jul 2026 04:31:00 GMT", now=now) == 60.0
    assert parse_retry_after("soon", now=now) is None


def test_a_slow_server_times_out(server: FeedServer) -> None:
    url = server.add("/slow", Reply(b"<rss/>", delay=1.0))
    with Fetcher(retries=1, backoff_seconds=0.01) as client, pytest.raises(SourceError, match="timeout") as raised:
        client.fetch(url, timeout=0.3)
    assert "no answer within 0.3 s" in raised.value.message and len(server.hits("/slow")) == 2


def test_connection_refused_and_404_are_readable(server: FeedServer, fetcher: Fetcher) -> None:
    with pytest.raises(SourceError, match="cannot connect"):
        fetcher.fetch(closed_port_url())
    with pytest.raises(SourceError, match="HTTP 404 Not Found") as raised:
        fetcher.fetch(server.base + "/nowhere")
    assert raised.value.hint == "check the source's url" and len(server.hits("/nowhere")) == 1


def _api_pages() -> Callable[[Request], Reply]:
    """The two pages of a paged API search (read now: a skip inside the server thread would be lost)."""
    pages = {
        "0": real_feed("arxiv_api_atom_legacy-2016_search_au-del_maestro.xml"),
        "10": real_feed("arxiv_api_atom_legacy-2016_search_au-del_maestro_ANDNOT.xml"),
    }
    return lambda request: Reply(pages[request.query["start"]], delay=0.05)


def test_api_paging_is_spaced_and_one_connection_at_a_time(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.route("/api/query", _api_pages())
    source = SourceSettings(name="api", kind="arxiv-api", url=url, query="au:del_maestro", max_results=20)
    harvest = Harvest(source="api")
    fetch_arxiv_api(fetcher, source, harvest, page_size=10)
    hits = server.hits("/api/query")
    assert [h.query["start"] for h in hits] == ["0", "10"] and hits[0].query["max_results"] == "10"
    assert hits[0].query["search_query"] == "au:del_maestro"
    assert len(harvest.records) == 20 and harvest.pages == 2
    assert hits[1].at - hits[0].at >= 0.2 and server.max_in_flight == 1


def test_the_arxiv_api_gets_real_three_second_spacing(server: FeedServer) -> None:
    """The default interval, measured in the server: arXiv's "one request every 3 seconds"."""
    url = server.route("/api/query", _api_pages())
    source = SourceSettings(name="api", kind="arxiv-api", url=url, query="au:del_maestro", max_results=20)
    with Fetcher(contact="ops@example.org") as client:
        assert client.polite_interval == 3.0
        fetch_arxiv_api(client, source, Harvest(source="api"), page_size=10)
    first, second = server.hits("/api/query")
    assert second.at - first.at >= 3.0
    assert server.max_in_flight == 1


def test_threads_sharing_a_fetcher_never_overlap_on_a_polite_host(server: FeedServer, fetcher: Fetcher) -> None:
    import threading

    url = server.add("/oai", Reply(b"<x/>", delay=0.05))
    threads = [threading.Thread(target=fetcher.fetch, args=(url,), kwargs={"polite": True}) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = sorted(hit.at for hit in server.hits("/oai"))
    assert server.max_in_flight == 1 and all(b - a >= 0.2 for a, b in zip(times, times[1:], strict=False))
    assert time.monotonic() - started >= 0.4


def test_a_dns_failure_is_retried_then_readable() -> None:
    """Through the fetcher's resolver seam: a resolver error without asking any resolver."""
    import socket

    calls: list[str] = []

    def no_such_host(host: str, port: int) -> list[str]:
        calls.append(host)
        raise socket.gaierror(-2, "Name or service not known")

    with Fetcher(resolver=no_such_host, retries=1, backoff_seconds=0.01) as client:
        with pytest.raises(SourceError, match=r"cannot connect: \[Errno -2\] Name or service not known") as raised:
            client.fetch("https://feeds.example.invalid/rss")
    assert calls == ["feeds.example.invalid"] * 2 and raised.value.hint == "check the url"


def test_https_is_verified_and_bounded_like_http() -> None:
    """TLS over loopback with a test CA: the guarded connection carries the handshake, and
    a certificate nobody vouches for is refused."""
    import ssl

    import trustme
    from feed_server import feed_server

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    with feed_server(tls=context) as server:
        url = server.add("/feed", Reply(own_feed("journal_atom.xml"), gzip=True))
        with Fetcher(ssl_context=trusting, retries=0) as client:
            assert client.fetch(url, deadline=10).content == own_feed("journal_atom.xml")
        with Fetcher(retries=0) as client, pytest.raises(SourceError, match="cannot connect: .*CERTIFICATE_VERIFY"):
            client.fetch(url)
    assert len(server.hits("/feed")) == 1
