"""Connections for sources: each request within a total deadline, each redirect kept off
private addresses unless the source's own address is private.

Both rules are enforced in an httpcore network backend (httpcore's documented extension
point), where every connection is made and every byte read:

- the deadline: every connect, read and write gets at most the time left before the
  request's deadline, so a server dripping one byte a second cannot stretch a request
  (a per-read timeout alone would never fire);
- the address rule: the name is resolved here and each address is checked before the
  connection is made, so a redirect to a name that resolves to 127.0.0.1, 10.x or the
  cloud metadata address 169.254.169.254 is refused too.

The rules for the request in progress are a context variable set by `guarded()` (the
fetcher's requests are synchronous, in the caller's thread).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpcore

from digestd.errors import SourceError

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host`, in the system resolver's order, without repeats."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local,
    shared, reserved or multicast); IPv4-mapped IPv6 addresses are judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def address_refusal(address: str, *, source_addresses: Sequence[str] | None) -> str | None:
    """Why a connection to `address` is refused, or None when it is allowed.

    `source_addresses` is None for the source's own URL (the operator chose it); after a
    redirect it holds the source's addresses: a source on a private or loopback address
    may be redirected within private space, a public one only to public addresses."""
    if source_addresses is None or is_public(address):
        return None
    if not all(is_public(own) for own in source_addresses):
        return None
    return f"{address} is not a public address (the source's own address is)"


class AddressRefusedError(SourceError):
    """A redirect led to an address the rule above refuses."""


@dataclass
class Guard:
    """The limits of the request in progress."""

    deadline_seconds: float
    deadline: float  # time.monotonic() by which the request must be complete
    source_addresses: Sequence[str] | None = None  # set once the request is redirected
    deadline_bound: bool = field(default=False)  # the last timeout handed out was the deadline's

    def bounded(self, timeout: float | None, *, connecting: bool = False) -> float:
        """`timeout`, shortened to the time left; raises a timeout once none is left."""
        left = self.deadline - time.monotonic()
        self.deadline_bound = timeout is None or left < timeout
        if left <= 0:
            raise (httpcore.ConnectTimeout if connecting else httpcore.ReadTimeout)("deadline reached")
        return left if timeout is None else min(timeout, left)


_current: ContextVar[Guard | None] = ContextVar("digestd_request_guard", default=None)


@contextmanager
def guarded(*, deadline_seconds: float, source_addresses: Sequence[str] | None = None) -> Iterator[Guard]:
    """Apply a deadline (and, with `source_addresses`, the address rule) to the requests
    made inside the block."""
    guard = Guard(deadline_seconds, time.monotonic() + deadline_seconds, source_addresses)
    token = _current.set(guard)
    try:
        yield guard
    finally:
        _current.reset(token)


def _bounded(timeout: float | None, *, connecting: bool = False) -> float | None:
    guard = _current.get()
    return timeout if guard is None else guard.bounded(timeout, connecting=connecting)


class GuardedStream(httpcore.NetworkStream):
    """A connection whose every read and write is bounded by the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        secured = self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout, connecting=True))
        return GuardedStream(secured)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend, with the name resolved and checked here first."""

    def __init__(self, resolver: Resolver = resolve) -> None:
        self._resolve = resolver
        self._system = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        guard = _current.get()
        try:
            addresses = self._resolve(host, port)
        except OSError as error:  # socket.gaierror: no such name, no resolver
            raise httpcore.ConnectError(str(error)) from None
        rule = guard.source_addresses if guard is not None else None
        refusals = [address_refusal(address, source_addresses=rule) for address in addresses]
        allowed = [address for address, refusal in zip(addresses, refusals, strict=True) if refusal is None]
        if not allowed:
            raise AddressRefusedError(f"{host}: {refusals[0]}" if refusals else f"{host}: no address")
        failure: Exception | None = None
        for address in allowed:  # as socket.create_connection does: the first that answers
            try:
                stream = self._system.connect_tcp(
                    address,
                    port,
                    timeout=_bounded(timeout, connecting=True),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as error:
                failure = error
                continue
            return GuardedStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("sources are fetched over TCP only")

    def sleep(self, seconds: float) -> None:
        self._system.sleep(seconds)
