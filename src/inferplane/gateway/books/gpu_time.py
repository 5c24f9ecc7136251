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
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from inferplane.ledger.attribution import US_PER_S
from inferplane.ledger.spans import RequestSpan

SECONDS_PER_HOUR = 3600
_BY_TIME_ENDS_FIRST = operator.itemgetter(0, 1)  # at equal times an end (0) before a start


class Share(NamedTuple):  # a tuple: one is made for every request
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
        # One loop over locals: it runs for every request the gateway serves.
        integral, total_rate, last = self._integral, self._total_rate, self._last
        charged_us, charged_micro = self._charged_us, self._charged_micro
        gpus, rate_num, rate_den, active = self._gpus, self._rate_num, self._rate_den, self._active
        shares: list[Share] = []
        for at, starts, span in self._events(cut):
            if at > last:
                if total_rate > 0:
                    integral += (at - last) / total_rate
                last = at
            if starts:
                rate = max(span.tokens, 1) / (span.end - span.start)
                active[span.request_id] = (rate, integral)
                total_rate += rate
                continue
            found = active.pop(span.request_id, None)
            busy_s = 0.0  # a zero-length span: no time to share
            if found is not None:
                rate, integral_at_start = found
                total_rate = total_rate - rate if active else 0.0
                busy_s = rate * (integral - integral_at_start)
            # Charged cumulatively: the charges add up to floor(all busy GPU time x price).
            gpu_us = round(busy_s * US_PER_S) * gpus
            charged_us += gpu_us
            total = charged_us * rate_num // rate_den
            shares.append(Share(span, gpu_us / US_PER_S, total - charged_micro))
            charged_micro = total
        self._integral, self._total_rate, self._last = integral, total_rate, last
        self._charged_us, self._charged_micro = charged_us, charged_micro
        return shares

    def _events(self, cut: float) -> list[tuple[float, int, RequestSpan]]:
        """Starts and ends up to `cut` in time order (at equal times an end first)."""
        events: list[tuple[float, int, RequestSpan]] = []
        keep: list[RequestSpan] = []
        active = self._active
        for span in self._waiting:
            if span.start <= cut and span.end > span.start and span.request_id not in active:
                events.append((span.start, 1, span))
            if span.end <= cut:
                events.append((span.end, 0, span))
            else:
                keep.append(span)
        self._waiting = keep
        events.sort(key=_BY_TIME_ENDS_FIRST)
        return events
