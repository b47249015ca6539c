"""Rate limits for the web: an in-memory token bucket per key (a client network, an email).

In memory and per process: a restart forgets every bucket, and several web processes each
keep their own. The table holds at most `max_keys` buckets and never drops one that is
still refilling: a flood of new keys cannot free a limited key by pushing it out. When the
table is full, buckets that have surely refilled (untouched for a whole period) make room,
oldest first; if there are none, the new key is refused until some have. Clients are keyed
by their address, IPv6 ones by their /64 (one household or server usually has a whole /64).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def client_key(host: str) -> str:
    """What a client is limited by: its IPv4 address, or its IPv6 /64 network."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class RateLimiter:
    """`capacity` requests at once, refilled at `capacity` per `period_seconds`."""

    capacity: float
    period_seconds: float
    max_keys: int = 100_000
    # key -> (tokens, last update); in order of last update, oldest first
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)
    _refusing: bool = False  # full, refusing new keys (logged once per episode)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.period_seconds <= 0:
            raise ValueError("a rate limit needs a capacity and a period above 0")

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + max(0.0, now - at) * self.capacity / self.period_seconds)

    def allow(self, key: str, now: float) -> bool:
        """Take one token for `key` at time `now` (seconds); False when none is left."""
        if key not in self._buckets and not self._make_room(now):
            return False
        tokens = self._level(key, now)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        self._buckets.move_to_end(key)
        return allowed

    def _make_room(self, now: float) -> bool:
        """Forget buckets untouched for a whole period (they are full again); True if there is room."""
        while self._buckets:
            oldest, (_, at) = next(iter(self._buckets.items()))
            if len(self._buckets) < self.max_keys or now - at < self.period_seconds:
                break
            del self._buckets[oldest]
        if len(self._buckets) < self.max_keys:
            self._refusing = False
            return True
        if not self._refusing:
            self._refusing = True
            log.warning("web: rate-limit table full (%d keys refilling): refusing new ones", self.max_keys)
        return False
