"""A replica's busy time shared among its requests, from the gateway's view: request spans.

The model is the ledger's (ledger.spans): each request processes its tokens at an even pace,
and in every stretch of time the requests active on the replica share it by their token rates.
A request's share is then rate x the integral of 1 / (sum of active rates) over its span, so
one running integral gives every share in O(1) per start or end, instead of cutting the
timeline into steps (the gateway does this for every request, at thousands per second).

Spans are swept only up to a cut before which nothing is still in flight (the earliest start
of a request not yet finished), so every share is final when it is handed out.
"""

import math
import operator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from inferplane.ledger.attribution import US_PER_S
from inferplane.ledger.spans import RequestSpan

SECONDS_PER_HOUR = 3600
_BY_TIME_ENDS_FIRST = operator.itemgetter(0, 1)  # at equal times an end (0) before a start


@dataclass(frozen=True)
class Share:
    span: RequestSpan
    gpu_seconds: float  # wall seconds x GPUs
    cost_micro_usd: int


class ReplicaTimeline:
    """Finished spans of one replica, swept in time order into busy-time shares and costs."""

    def __init__(self, hourly_usd: float, gpus: int = 1) -> None:
        if gpus < 1 or hourly_usd < 0:
            raise ValueError("a replica needs gpus >= 1 and a price >= 0 $/GPU-hour")
        self._gpus = gpus
        rate = Fraction(Decimal(str(hourly_usd))) / SECONDS_PER_HOUR  # micro-$ per GPU-us
        self._rate_num, self._rate_den = rate.numerator, rate.denominator  # ints: fast, exact
        self._waiting: list[RequestSpan] = []
        self._active: dict[str, tuple[float, float]] = {}  # id -> (token rate, integral at start)
        self._integral = 0.0  # of 1 / (sum of active rates) dt, over busy time
        self._total_rate = 0.0
        self._last = -math.inf
        self._charged_us = 0
        self._charged_micro = 0

    def finished(self, span: RequestSpan) -> None:
        self._waiting.append(span)

    def pending(self) -> int:
        return len(self._waiting)

    def sweep(self, cut: float) -> list[Share]:
        """Shares of the spans that ended by `cut`; no request may still run before `cut`."""
        events: list[tuple[float, int, RequestSpan]] = []
        keep: list[RequestSpan] = []
        for span in self._waiting:
            if span.start <= cut and span.request_id not in self._active and span.end > span.start:
                events.append((span.start, 1, span))
            if span.end <= cut:
                events.append((span.end, 0, span))
            else:
                keep.append(span)
        self._waiting = keep
        events.sort(key=_BY_TIME_ENDS_FIRST)
        return [share for e in events if (share := self._event(*e)) is not None]

    def _event(self, at: float, starts: int, span: RequestSpan) -> Share | None:
        if self._total_rate > 0 and at > self._last:
            self._integral += (at - self._last) / self._total_rate
        self._last = max(self._last, at)
        if starts:
            rate = max(span.tokens, 1) / (span.end - span.start)
            self._active[span.request_id] = (rate, self._integral)
            self._total_rate += rate
            return None
        found = self._active.pop(span.request_id, None)
        if found is None:  # a zero-length span: no time to share
            return self._share(span, 0.0)
        rate, integral_at_start = found
        self._total_rate = self._total_rate - rate if self._active else 0.0
        return self._share(span, rate * (self._integral - integral_at_start))

    def _share(self, span: RequestSpan, busy_s: float) -> Share:
        # Charged cumulatively: the charges add up to floor(all busy GPU time x price).
        gpu_us = round(busy_s * US_PER_S) * self._gpus
        self._charged_us += gpu_us
        total = self._charged_us * self._rate_num // self._rate_den
        cost, self._charged_micro = total - self._charged_micro, total
        return Share(span, gpu_us / US_PER_S, cost)
