"""Rate limits for the web: an in-memory token bucket per key (a client address, an email).

One process only: several web processes each keep their own buckets. Full buckets are
forgotten when the table grows, so memory stays bounded under a flood of new keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """`capacity` requests at once, refilled at `capacity` per `period_seconds`."""

    capacity: float
    period_seconds: float
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.period_seconds <= 0:
            raise ValueError("a rate limit needs a capacity and a period above 0")

    @property
    def _rate(self) -> float:
        return self.capacity / self.period_seconds

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + max(0.0, now - at) * self._rate)

    def allow(self, key: str, now: float) -> bool:
        """Take one token for `key` at time `now` (seconds); False when none is left."""
        tokens = self._level(key, now)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        if len(self._buckets) >= self.max_keys:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1, now)
        return True

    def _forget_full(self, now: float) -> None:
        full = [key for key in self._buckets if self._level(key, now) >= self.capacity]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # all busy: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.max_keys // 2]
            for key in oldest:
                del self._buckets[key]
