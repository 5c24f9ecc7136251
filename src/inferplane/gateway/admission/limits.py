"""Rate limits per API key: requests per minute and tokens per minute, as token buckets.

Each limit is a bucket holding up to a minute's allowance and refilling continuously, so a key
may burst up to its limit and then runs at its rate. Tokens are estimated at admission (prompt
plus max_tokens) and corrected by settle() once the real usage is known. A request larger
than a whole bucket is let through when the bucket is full and leaves it in debt, rather than
being refused forever. O(1) per request; time comes from an injected clock.
"""

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inferplane.gateway.admission.auth import ApiKey
from inferplane.gateway.admission.limits_zone import ZoneView

if TYPE_CHECKING:
    from inferplane.gateway.admission.limits_zone import Cells
from inferplane.gateway.admission.refusal import Refusal, rate_limited

Clock = Callable[[], float]
CHARS_PER_TOKEN = 4  # a rough English average; settle() corrects the estimate


def estimate_tokens(prompt_chars: int, max_tokens: int) -> int:
    """What a request may cost in tokens before it runs: its prompt plus its output budget."""
    return math.ceil(prompt_chars / CHARS_PER_TOKEN) + max_tokens


class TokenBucket:
    """A bucket's three numbers (per minute, level, stamp) at `at` in `cells`: a list of its
    own, or a worker's view of the zone all workers share (limits_zone.py)."""

    __slots__ = ("at", "cells")

    def __init__(self, cells: "Cells", at: int = 0) -> None:
        self.cells = cells
        self.at = at

    @classmethod
    def full(cls, per_minute: int, now: float) -> "TokenBucket":
        return cls([float(per_minute), float(per_minute), now])

    def reset(self, per_minute: int, now: float) -> None:
        """Full, at a new limit (a new key, or its limit changed)."""
        at = self.at
        self.cells[at], self.cells[at + 1], self.cells[at + 2] = (
            float(per_minute),
            float(per_minute),
            now,
        )

    @property
    def per_minute(self) -> int:
        return int(self.cells[self.at])

    @property
    def level(self) -> float:
        return self.cells[self.at + 1]

    def refill(self, now: float) -> None:
        cells, at = self.cells, self.at
        per_minute = cells[at]
        cells[at + 1] = min(per_minute, cells[at + 1] + (now - cells[at + 2]) * per_minute / 60)
        cells[at + 2] = now

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` fits (capped at a full bucket); 0 when it fits now."""
        per_minute = self.cells[self.at]
        missing = min(amount, per_minute) - self.cells[self.at + 1]
        return max(0.0, missing * 60 / per_minute)

    def put(self, amount: float) -> None:
        """Take (a positive amount) or give back (negative), never above a full bucket."""
        at = self.at
        self.cells[at + 1] = min(self.cells[at], self.cells[at + 1] - amount)


@dataclass(frozen=True)
class LimitDecision:
    refusal: Refusal | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers, plus Retry-After when refused."""
        pairs = {
            "x-ratelimit-limit-requests": self.limit_requests,
            "x-ratelimit-remaining-requests": self.remaining_requests,
            "x-ratelimit-limit-tokens": self.limit_tokens,
            "x-ratelimit-remaining-tokens": self.remaining_tokens,
        }
        headers = {name: str(value) for name, value in pairs.items() if value is not None}
        return headers | (self.refusal.headers() if self.refusal else {})


class RateLimiter:
    """Buckets per key name, made when a key is first seen: this process's own, or in the zone
    every worker of the gateway shares. Not thread-safe within a process (one event loop)."""

    def __init__(self, clock: Clock, zone: ZoneView | None = None) -> None:
        self._clock = clock
        self._zone = zone
        self._lock: AbstractContextManager[Any] = zone.lock if zone else nullcontext()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def admit(self, key: ApiKey, tokens: int) -> LimitDecision:
        """May this key send a request estimated at `tokens` now? Takes from both buckets if so."""
        with self._lock:
            now = self._clock()
            requests = self._bucket(key.name, "requests", key.requests_per_minute, now)
            budget = self._bucket(key.name, "tokens", key.tokens_per_minute, now)
            waits = {
                "requests": requests.wait_s(1) if requests else 0.0,
                "tokens": budget.wait_s(tokens) if budget else 0.0,
            }
            limit, wait = max(waits.items(), key=lambda item: item[1])
            if wait > 0:
                return _decision(requests, budget, _refusal(key, limit, wait))
            if requests:
                requests.put(1)
            if budget:
                budget.put(tokens)
            return _decision(requests, budget, None)

    def settle(self, key: ApiKey, estimated: int, actual: int) -> None:
        """Correct the tokens bucket once a request's real usage is known."""
        bucket = self._buckets.get((key.name, "tokens"))
        if bucket is not None:
            with self._lock:
                bucket.refill(self._clock())
                bucket.put(actual - estimated)

    def _bucket(
        self, name: str, kind: str, per_minute: int | None, now: float
    ) -> TokenBucket | None:
        if per_minute is None:
            return None
        bucket = self._buckets.get((name, kind)) or self._place(name, kind)
        if bucket.per_minute != per_minute:  # new key, or its limit changed
            bucket.reset(per_minute, now)
        bucket.refill(now)
        return bucket

    def _place(self, name: str, kind: str) -> TokenBucket:
        """A new key's bucket: in the shared zone when there is one with room."""
        zone = self._zone
        at = None if zone is None else zone.slot(name, kind)
        if zone is not None and at is not None:
            bucket = TokenBucket(zone.cells, at)
        else:
            bucket = TokenBucket([-1.0, 0.0, 0.0])
        self._buckets[(name, kind)] = bucket
        return bucket


def _refusal(key: ApiKey, limit: str, wait_s: float) -> Refusal:
    retry = max(1, math.ceil(wait_s))
    per_minute = key.requests_per_minute if limit == "requests" else key.tokens_per_minute
    message = (
        f"Rate limit reached for key {key.name!r} on {limit} per minute (limit: {per_minute}). "
        f"Please try again in {retry} s."
    )
    return rate_limited(message, retry)


def _decision(
    requests: TokenBucket | None, tokens: TokenBucket | None, refusal: Refusal | None
) -> LimitDecision:
    return LimitDecision(
        refusal=refusal,
        remaining_requests=None if requests is None else max(0, math.floor(requests.level)),
        remaining_tokens=None if tokens is None else max(0, math.floor(tokens.level)),
        limit_requests=None if requests is None else requests.per_minute,
        limit_tokens=None if tokens is None else tokens.per_minute,
    )
