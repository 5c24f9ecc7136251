"""Cost attribution: share a replica's GPU time among the requests it served, and its idle time.

A replica's timeline is a sequence of steps; in each step some requests processed some tokens.
The step's GPU time is shared among them by tokens; time in no step is idle. Time is kept in
integer GPU-microseconds and split by largest remainder, so every microsecond lands in exactly
one row. Costs are charged cumulatively (each charge is floor(total so far x rate) minus what
was charged before), so the charges of requests and idle time always add up to
floor(GPU-time x price): the books close to the micro-dollar.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

US_PER_S = 1_000_000
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class Step:
    """A stretch of replica time in which requests processed tokens (request id -> weight)."""

    start: float
    end: float
    tokens: Mapping[str, float]


@dataclass(frozen=True)
class Charge:
    gpu_us: int  # GPU-microseconds: wall time x GPUs
    cost_micro_usd: int

    @property
    def gpu_seconds(self) -> float:
        return self.gpu_us / US_PER_S


@dataclass(frozen=True)
class IdleCharge:
    start: float
    end: float
    charge: Charge


def to_us(seconds: float) -> int:
    return round(seconds * US_PER_S)


def split(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split an integer total by weights so the parts add up to it exactly."""
    exact = {k: Fraction(w) for k, w in weights.items() if w > 0}
    whole = sum(exact.values(), Fraction(0))
    if whole == 0:
        return {}
    shares = {k: total * w / whole for k, w in exact.items()}
    parts = {k: math.floor(s) for k, s in shares.items()}
    short = total - sum(parts.values())
    by_remainder = sorted(shares, key=lambda k: (parts[k] - shares[k], k))
    for key in by_remainder[:short]:
        parts[key] += 1
    return parts


class ReplicaMeter:
    """The running account of one replica: busy time per request, idle time, charges."""

    def __init__(self, hourly_usd: float | Decimal, gpus: int, start: float) -> None:
        if gpus < 1 or Decimal(str(hourly_usd)) < 0:
            raise ValueError("a replica needs gpus >= 1 and a price >= 0 $/GPU-hour")
        self._rate = Fraction(Decimal(str(hourly_usd))) / SECONDS_PER_HOUR  # micro-$ per GPU-us
        self._gpus = gpus
        self._clock_us = self._idle_since_us = to_us(start)
        self._busy_us: dict[str, int] = {}
        self._idle_us = 0
        self._charged_us = 0
        self._charged_micro = 0

    def observe(self, step: Step) -> None:
        """Account one step; time before it since the last step is idle."""
        start, end = max(to_us(step.start), self._clock_us), to_us(step.end)
        if end <= start:
            return
        self._idle_us += start - self._clock_us
        parts = split(end - start, step.tokens)
        if not parts:
            self._idle_us += end - start
        for request_id, wall_us in parts.items():
            self._busy_us[request_id] = self._busy_us.get(request_id, 0) + wall_us
        self._clock_us = end

    def charge(self, request_id: str) -> Charge:
        """The GPU time and cost of a finished request; it leaves the account."""
        return self._charge(self._busy_us.pop(request_id, 0) * self._gpus)

    def charge_idle(self, until: float) -> IdleCharge | None:
        """The idle time accumulated since the last call, up to `until`; None if there was none."""
        self._idle_us += max(0, to_us(until) - self._clock_us)
        self._clock_us = max(self._clock_us, to_us(until))
        if self._idle_us == 0:
            return None
        start, end = self._idle_since_us / US_PER_S, self._clock_us / US_PER_S
        charge = self._charge(self._idle_us * self._gpus)
        self._idle_us, self._idle_since_us = 0, self._clock_us
        return IdleCharge(start, end, charge)

    def pending(self) -> tuple[str, ...]:
        """Requests with time accounted but not yet charged (still in flight)."""
        return tuple(self._busy_us)

    def _charge(self, gpu_us: int) -> Charge:
        self._charged_us += gpu_us
        total_micro = math.floor(self._charged_us * self._rate)
        cost, self._charged_micro = total_micro - self._charged_micro, total_micro
        return Charge(gpu_us, cost)


@dataclass(frozen=True)
class Attribution:
    requests: Mapping[str, Charge]
    idle: Charge


def attribute(
    steps: Iterable[Step], start: float, end: float, hourly_usd: float | Decimal, gpus: int = 1
) -> Attribution:
    """Attribute a closed window of one replica's time: every request, then the idle rest."""
    meter = ReplicaMeter(hourly_usd, gpus, start)
    for step in sorted(steps, key=lambda s: s.start):
        meter.observe(step)
    requests = {request_id: meter.charge(request_id) for request_id in sorted(meter.pending())}
    idle = meter.charge_idle(end)
    return Attribution(requests, idle.charge if idle else Charge(0, 0))
