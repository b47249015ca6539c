"""HTTP for sources: one polite, conditional, retrying GET.

- User-Agent `digestd/<version> (+mailto:<ingest.contact>)`, so feed owners can reach you.
- Conditional GET: the stored ETag / Last-Modified are sent; 304 means nothing new.
- gzip/deflate bodies are decoded by httpx; timeouts apply per request.
- Politeness per host: requests to a host are spaced by its interval and never overlap
  (one connection at a time). arXiv's hosts (API, OAI-PMH, RSS) get `polite_interval`
  (3 s, arXiv's terms); callers mark other hosts polite with `polite=True` (the arxiv-api
  and oai-pmh sources do, so a mirror or proxy of arXiv is treated the same).
- 429 / 503 honour `Retry-After` (seconds or an HTTP date) up to `max_retry_after`;
  a longer wait ends the run with `RetryLaterError` so the next run starts after it.
  Timeouts, connection errors and other 5xx are retried with bounded exponential backoff.

Library code here raises only `SourceError` subclasses with a one-line message.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import metadata
from urllib.parse import urlsplit

import httpx

from digestd.errors import SourceError

log = logging.getLogger(__name__)

ARXIV_POLITE_HOSTS = ("export.arxiv.org", "arxiv.org", "oaipmh.arxiv.org", "rss.arxiv.org")
RETRY_STATUSES = (429, 500, 502, 503, 504)


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
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


def user_agent(contact: str) -> str:
    try:
        version = metadata.version("digestd")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"digestd/{version} (self-hosted paper digest; +mailto:{contact or 'no-contact-configured'})"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class Fetcher:
    """A shared HTTP client for all sources of one ingest run. Use as a context manager."""

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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.polite_interval = polite_interval
        self.default_interval = default_interval
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after = max_retry_after
        self._sleep, self._clock = sleep, clock
        self._client = httpx.Client(
            headers={"User-Agent": user_agent(contact), "Accept-Encoding": "gzip, deflate"},
            follow_redirects=True,
            transport=transport,
        )
        self._hosts_lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._next_allowed: dict[str, float] = {}

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

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
        polite: bool = False,
        accept_error_body: bool = False,
    ) -> Response:
        """GET `url`; retries what is worth retrying, raises `SourceError` for the rest.

        `accept_error_body=True` returns 4xx responses (for APIs that explain errors in the body)."""
        host = urlsplit(url).netloc.lower()
        interval = self.polite_interval if polite or host in ARXIV_POLITE_HOSTS else self.default_interval
        headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", last_modified)) if v}
        with self._host_lock(host):
            for attempt in range(self.retries + 1):
                final = attempt == self.retries
                self._wait_turn(host)
                try:
                    response = self._get(url, params, headers, timeout)
                finally:
                    self._next_allowed[host] = self._clock() + interval
                wait = self._retry_wait(url, response, attempt, final)
                if wait is None and isinstance(response, Response):
                    return self._checked(url, response, accept_error_body)
                wait = wait or 0.0
                log.info("retrying %s in %.1f s (attempt %d of %d)", url, wait, attempt + 2, self.retries + 1)
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(
        self, url: str, params: Mapping[str, str] | None, headers: dict[str, str], timeout: float
    ) -> Response | SourceError:
        """One request; a transport failure is returned (not raised) so the caller can retry it."""
        try:
            reply = self._client.get(url, params=params, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            return SourceError(f"{url}: no answer within {timeout:g} s (timeout)", hint="raise timeout_seconds")
        except httpx.HTTPError as error:
            return SourceError(f"{url}: cannot connect: {error or type(error).__name__}", hint="check the url")
        return Response(url=str(reply.url), status=reply.status_code, content=reply.content, headers=reply.headers)

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
            message = f"{reason}, the server asks to retry after {retry_after:.0f} s"
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


def _body_excerpt(content: bytes, limit: int = 160) -> str:
    """What an error body says, in one short line (a page's title, or the start of its text)."""
    text = content[:4096].decode("utf-8", "replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    words = " ".join(re.sub(r"<[^>]+>", " ", title.group(1) if title else text).split())
    return words if len(words) <= limit else words[: limit - 3] + "..."
