"""A real HTTP server on 127.0.0.1 (port 0) for source tests, plus the feed files it serves.

Routes map a path to replies (served in order, the last one repeated) or to a function
of the request. Every request is recorded with its arrival time (monotonic) and headers,
and the server tracks how many requests were in flight at once.

Replies can misbehave on purpose: wait before answering (`delay`), send the whole
response a byte at a time (`drip`), or carry any status, headers and raw body (a
redirect, a huge Retry-After, a pre-compressed gzip bomb from `gzip_bomb`).
"""

from __future__ import annotations

import functools
import gzip
import os
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

IN_CI = os.environ.get("CI") == "true"
REAL_FEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "feeds"
OWN_FEEDS = Path(__file__).resolve().parent / "fixtures" / "feeds"


def real_feed(name: str) -> bytes:
    """A recorded response from ../shared/data/feeds; skipped when absent, a failure under CI=true."""
    path = REAL_FEEDS / name
    if not path.exists():
        message = f"{path} is absent: the shared data folder must sit beside the checkout (../shared)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path.read_bytes()


def own_feed(name: str) -> bytes:
    return (OWN_FEEDS / name).read_bytes()


@dataclass(frozen=True)
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drip: float = 0.0  # seconds between bytes: status line, headers and body sent one byte at a time
    gzip: bool = False  # send with Content-Encoding: gzip
    etag: str | None = None  # answer 304 when the request carries this If-None-Match


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


Route = list[Reply] | Callable[[Request], Reply]


class FeedServer:
    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()  # set on shutdown: a dripping reply stops at once
        self._httpd = ThreadingHTTPServer((host, 0), self._handler())
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.base = f"{'https' if tls else 'http'}://{host}:{self._httpd.server_address[1]}"

    def add(self, path: str, *replies: Reply) -> str:
        """Serve `replies` at `path`, in order (the last one repeats); returns the full URL."""
        self.routes[path] = list(replies)
        return self.base + path

    def route(self, path: str, answer: Callable[[Request], Reply]) -> str:
        """Serve whatever `answer` makes of each request; returns the full URL."""
        self.routes[path] = answer
        return self.base + path

    def hits(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    def _reply(self, request: Request) -> Reply:
        route = self.routes.get(request.path)
        if route is None:
            return Reply(b"not found", status=404)
        if not isinstance(route, list):
            return route(request)
        count = len(self.hits(request.path))
        return route[min(count - 1, len(route) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                request = Request(parts.path, query, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                with server._lock:
                    server.requests.append(request)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(server._reply(request), request)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, reply: Reply, request: Request) -> None:
                if server._closing.wait(reply.delay):
                    return
                if reply.drip:
                    self._drip(reply)
                    return
                if reply.etag and request.headers.get("if-none-match") == reply.etag:
                    self.send_response(304)
                    self.send_header("ETag", reply.etag)
                    self.end_headers()
                    return
                body = gzip.compress(reply.body) if reply.gzip else reply.body
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.gzip:
                    self.send_header("Content-Encoding", "gzip")
                if reply.etag:
                    self.send_header("ETag", reply.etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drip(self, reply: Reply) -> None:
                """The whole response, one byte every `reply.drip` seconds (a server that never quite stops)."""
                self.close_connection = True
                head = [f"HTTP/1.1 {reply.status} Drip", f"Content-Length: {len(reply.body)}", "Connection: close"]
                head += [f"{name}: {value}" for name, value in reply.headers.items()]
                response = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body
                for index in range(len(response)):
                    self.wfile.write(response[index : index + 1])
                    self.wfile.flush()
                    if server._closing.wait(reply.drip):
                        return

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[FeedServer]:
        thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._closing.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            thread.join()


@contextmanager
def feed_server(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[FeedServer]:
    """A running server on `host` (any 127.x.y.z address: they are all this machine), over
    TLS with the certificate `tls` holds."""
    with FeedServer(host, tls).running() as server:
        yield server


@functools.cache
def gzip_bomb(megabytes: int) -> bytes:
    """A gzip stream of `megabytes` MB of zeros: about a thousandth of that on the wire."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([packer.compress(zeros) for _ in range(megabytes)] + [packer.flush()])


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connection refused, no DNS, no network)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed"
