"""HTTP for sources: one polite, conditional, retrying, bounded GET.

- User-Agent `digestd/<version> (+mailto:<ingest.contact>)`, so feed owners can reach you.
- Conditional GET: the stored ETag / Last-Modified are sent; 304 means nothing new.
- Politeness per host: requests to a host are spaced by its interval and never overlap
  (one connection at a time, none kept open). arXiv's hosts (API, OAI-PMH, RSS) get
  `polite_interval` (3 s, arXiv's terms); callers mark other hosts polite with
  `polite=True` (the arxiv-api and oai-pmh sources do, so a mirror or proxy of arXiv is
  treated the same). Share one `Fetcher` between concurrent source runs (the daemon
  does) and the spacing holds across them.
- 429 / 503 honour `Retry-After` (seconds or an HTTP date, read defensively, a week at
  most) up to `max_retry_after`; a longer wait ends the run with `RetryLaterError` so the
  next run starts after it. Timeouts, connection errors and other 5xx are retried with
  bounded exponential backoff.
- Bounded: `timeout` is the longest silence, `deadline` the longest a whole request may
  take (both per request, redirects included); the body is capped on the wire and once
  decompressed (`bodies`). A request past its deadline or over a cap is not retried.
- Redirects (at most 5) are followed to http(s) URLs only, and off the source's own
  private network only to public addresses (`network`).

Library code here raises only `SourceError` subclasses with a one-line message; remote
text appears in them only as a short, sanitised excerpt.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import metadata
from urllib.parse import urlsplit

import httpcore
import httpx

from digestd.errors import SourceError
from digestd.identity import excerpt
from digestd.ingest.sources.bodies import MB, read_body
from digestd.ingest.sources.network import AddressRefusedError, Guard, GuardedBackend, Resolver, guarded, resolve

log = logging.getLogger(__name__)

ARXIV_POLITE_HOSTS = ("export.arxiv.org", "arxiv.org", "oaipmh.arxiv.org", "rss.arxiv.org")
RETRY_STATUSES = (429, 500, 502, 503, 504)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 7 * 24 * 3600.0  # the longest server-requested wait honoured: a week
_DELTA_SECONDS = re.compile(r"[0-9]{1,12}")
_VALIDATOR = re.compile(r"[\x20-\x7e]{1,256}")  # what can be sent back in If-None-Match / If-Modified-Since


class RetryLaterError(SourceError):
    """Raised when a server asks us (429/503 + Retry-After) to wait longer than we wait in one run."""

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    content: bytes
    headers: Mapping[str, str]

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return _validator(self.headers.get("etag"))

    @property
    def last_modified(self) -> str | None:
        return _validator(self.headers.get("last-modified"))


def _validator(value: str | None) -> str | None:
    """A validator worth keeping: one we can send back as it came (printable ASCII, short)."""
    return value if value is not None and _VALIDATOR.fullmatch(value) else None


def user_agent(contact: str) -> str:
    try:
        version = metadata.version("digestd")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"digestd/{version} (self-hosted paper digest; +mailto:{contact or 'no-contact-configured'})"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), at most
    `MAX_RETRY_AFTER`; None when absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER) if _DELTA_SECONDS.fullmatch(text) else MAX_RETRY_AFTER
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


class Fetcher:
    """A shared HTTP client for the source runs of one process. Use as a context manager."""

    def __init__(
        self,
        *,
        contact: str = "",
        polite_interval: float = 3.0,
        default_interval: float = 0.0,
        retries: int = 2,
        backoff_seconds: float = 2.0,
        max_backoff_seconds: float = 60.0,
        max_retry_after: float = 120.0,
        max_response_bytes: int = 20 * MB,
        max_decompressed_bytes: int = 100 * MB,
        resolver: Resolver = resolve,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.polite_interval = polite_interval
        self.default_interval = default_interval
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after = max_retry_after
        self.max_response_bytes = max_response_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self._resolve = resolver
        self._sleep, self._clock = sleep, clock
        self._headers = {"User-Agent": user_agent(contact), "Accept-Encoding": "gzip, deflate"}
        # No connection is kept open: each request connects (and is checked) anew.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_keepalive_connections=0,
            network_backend=GuardedBackend(resolver),
        )
        self._hosts_lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._next_allowed: dict[str, float] = {}

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def _host_lock(self, host: str) -> threading.Lock:
        with self._hosts_lock:
            return self._host_locks.setdefault(host, threading.Lock())

    def _wait_turn(self, host: str) -> None:
        delay = self._next_allowed.get(host, 0.0) - self._clock()
        if delay > 0:
            log.debug("waiting %.2f s before the next request to %s", delay, host)
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)

    def fetch(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        timeout: float = 30.0,
        deadline: float = 120.0,
        polite: bool = False,
        accept_error_body: bool = False,
    ) -> Response:
        """GET `url`; retries what is worth retrying, raises `SourceError` for the rest.

        `timeout` bounds each wait for the server, `deadline` the whole request (redirects
        included). `accept_error_body=True` returns 4xx responses (for APIs that explain
        errors in the body)."""
        try:
            target = str(httpx.URL(url).copy_merge_params(params or {}))
        except httpx.InvalidURL as error:
            raise SourceError(f"{url}: not a usable URL ({error})", hint="check the source's url") from None
        host = urlsplit(url).netloc.lower()
        interval = self.polite_interval if polite or host in ARXIV_POLITE_HOSTS else self.default_interval
        # Checked again here: a validator stored by an older digestd may not be sendable.
        conditions = (("If-None-Match", _validator(etag)), ("If-Modified-Since", _validator(last_modified)))
        headers = {name: value for name, value in conditions if value}
        with self._host_lock(host):
            for attempt in range(self.retries + 1):
                final = attempt == self.retries
                self._wait_turn(host)
                try:
                    response = self._get(target, self._headers | headers, timeout, deadline)
                finally:
                    self._next_allowed[host] = self._clock() + interval
                wait = self._retry_wait(url, response, attempt, final)
                if wait is None and isinstance(response, Response):
                    return self._checked(url, response, accept_error_body)
                wait = wait or 0.0
                log.info("retrying %s in %.1f s (attempt %d of %d)", url, wait, attempt + 2, self.retries + 1)
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, url: str, headers: dict[str, str], timeout: float, deadline: float) -> Response | SourceError:
        """One request and its redirects within one deadline; a failure worth retrying is
        returned (not raised) so the caller can retry it."""
        with guarded(deadline_seconds=deadline) as guard:
            current = url
            for _hop in range(MAX_REDIRECTS + 1):
                response = self._request(current, headers, timeout, guard)
                if not isinstance(response, Response) or response.status not in REDIRECT_STATUSES:
                    return response
                if "location" not in response.headers:
                    return response
                current = self._redirect_target(url, current, response.headers["location"], guard)
        raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects", hint="check the source's url")

    def _redirect_target(self, url: str, current: str, location: str, guard: Guard) -> str:
        """The next URL, if it may be followed: http(s) only; from a public source, only to
        public addresses (checked when connecting, once the name is resolved)."""
        try:
            target = httpx.URL(current).join(location.strip())
        except httpx.InvalidURL:
            raise _refused(url, "an unreadable address") from None
        if target.scheme not in ("http", "https"):
            raise _refused(url, f"a {excerpt(target.scheme, 20)}: address" if target.scheme else "a relative address")
        if not target.host:
            raise _refused(url, "an address without a host")
        if guard.source_addresses is None:
            source = httpx.URL(url)
            try:
                guard.source_addresses = self._resolve(source.host, source.port or 0)
            except OSError:
                guard.source_addresses = []  # not resolvable now: treated as public, the strict case
        log.debug("%s redirects to %s", current, target)
        return str(target)

    def _request(self, url: str, headers: dict[str, str], timeout: float, guard: Guard) -> Response | SourceError:
        """One GET, its body read within the caps."""
        timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        try:
            with self._pool.stream(
                "GET", url, headers=list(headers.items()), extensions={"timeout": timeouts}
            ) as reply:
                fields = httpx.Headers(reply.headers)
                content = b""
                if reply.status not in REDIRECT_STATUSES:
                    content = read_body(
                        reply.iter_stream(),
                        content_encoding=fields.get("content-encoding", ""),
                        max_bytes=self.max_response_bytes,
                        max_decompressed=self.max_decompressed_bytes,
                        what=url,
                    )
        except httpcore.TimeoutException:
            if guard.deadline_bound:
                raise SourceError(
                    f"{url}: no complete answer within {guard.deadline_seconds:g} s (deadline_seconds)",
                    hint="raise deadline_seconds if the server is only slow",
                ) from None
            return SourceError(f"{url}: no answer within {timeout:g} s (timeout)", hint="raise timeout_seconds")
        except AddressRefusedError as error:
            raise SourceError(f"{url}: redirect refused: {error.message}", hint="check the source's url") from None
        except httpcore.UnsupportedProtocol as error:
            raise SourceError(f"{url}: {excerpt(str(error))}", hint="use an http:// or https:// url") from None
        except httpcore.ConnectError as error:
            reason = excerpt(str(error)) or type(error).__name__
            return SourceError(f"{url}: cannot connect: {reason}", hint="check the url")
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            return SourceError(f"{url}: the connection failed: {excerpt(str(error)) or type(error).__name__}")
        return Response(url=url, status=reply.status, content=content, headers=fields)

    def _retry_wait(self, url: str, response: Response | SourceError, attempt: int, final: bool) -> float | None:
        """Seconds to wait before retrying, None to stop; raises when giving up on an error."""
        if isinstance(response, SourceError):
            if final:
                raise response
            return self._backoff(attempt)
        if response.status not in RETRY_STATUSES:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=datetime.now(UTC))
        reason = f"{url}: HTTP {response.status}"
        if retry_after is not None and retry_after > self.max_retry_after:
            capped = " (a week at most is honoured)" if retry_after >= MAX_RETRY_AFTER else ""
            message = f"{reason}, the server asks to retry after {retry_after:.0f} s{capped}"
            raise RetryLaterError(message, retry_after=retry_after)
        if final:
            raise RetryLaterError(
                f"{reason} after {attempt + 1} attempts", retry_after=retry_after or self._backoff(attempt)
            )
        return retry_after if retry_after is not None else self._backoff(attempt)

    def _checked(self, url: str, response: Response, accept_error_body: bool) -> Response:
        if response.status < 400 or (accept_error_body and response.status < 500):
            return response
        reason = httpx.codes.get_reason_phrase(response.status)
        hint = "check the source's url" if response.status in (401, 403, 404, 410) else None
        detail = _body_excerpt(response.content)
        raise SourceError(
            f"{url}: HTTP {response.status} {reason}".rstrip() + (f": {detail}" if detail else ""), hint=hint
        )


def _refused(url: str, what: str) -> SourceError:
    return SourceError(
        f"{url}: redirect to {what} refused (only http and https URLs are followed)", hint="check the source's url"
    )


def _body_excerpt(content: bytes, limit: int = 100) -> str:
    """What an error body says, as a short sanitised excerpt (a page's title, or the start of its text)."""
    text = content[:4096].decode("utf-8", "replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return excerpt(re.sub(r"<[^>]+>", " ", title.group(1) if title else text), limit)
