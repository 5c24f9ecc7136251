"""The autoscaler of one pool: a pure decision over signals, a history and an injected clock.

Each `decide(now, signals)` goes through these steps, in order; the reason names each one
that changed the answer:

1. Target tracking, as the Kubernetes HPA does it. For the additive metrics
   (waiting_per_replica, in_flight_per_replica) the recommendation is
   ceil(pool total / target), which is ceil(ready x per-replica value / target). For the
   others (ttft_p95, kv_usage) it is ceil(ready x value / target), and within 10% of the
   target the count stays. From zero replicas any demand recommends at least 1.
2. Stabilization. Recommendations are kept with their times. Scaling up goes only as far as
   the LOWEST recommendation of the last `up_window` seconds (a spike shorter than the window
   scales nothing; a burst that lasts the window scales up when the window has passed, so
   with the default 30 s a burst is answered within 30 s). Scaling down goes only as far as
   the HIGHEST recommendation of the last `down_window` seconds (default 300 s). The first
   decision counts the current size as a recommendation: a restarted controller waits a
   full window before it moves.
3. Step limits, as KEDA / HPA behaviour policies: at most `up_step` replicas added per
   `up_period` (default 2 / 60 s) and `down_step` removed per `down_period` (1 / 120 s),
   counted over the scale events of the trailing period.
4. Bounds: the floor is max(min, every active scheduled minimum), the ceiling is max; the
   floor and ceiling win over the steps above (a schedule opening lifts the pool at once).
5. Scale to zero. Target tracking never takes a pool below 1 replica. A pool goes to 0 only
   when min is 0, no scheduled minimum is active, and it has been idle (no waiting, no
   in-flight, no arrivals, GPU under 5% where there is one) for `idle_to_zero` seconds
   (default when unset: the down window). Min > 0 or an active schedule wins over idleness.
   From zero, demand asks for a replica at once, without the up window: the gateway is
   holding that request.
6. A cap from outside (`cap`: for a CPU pool, the replicas its free cores hold): scaling up
   stops there, and the reason says why. It never takes a pool down, never below its floor,
   and a pool at zero with demand still gets its one replica.
"""

import math
from collections import deque
from dataclasses import dataclass

from inferplane.config.schema import Autoscale, ReplicaBounds
from inferplane.control.clock import Clock, active_windows
from inferplane.control.signals import Signals

_TOLERANCE = 0.1
_ADDITIVE = frozenset({"waiting_per_replica", "in_flight_per_replica"})


@dataclass(frozen=True)
class ReplicaCap:
    """The most replicas a pool may grow to for a reason the autoscaler does not see (for
    example the host's free cores), in words for the decision's reason."""

    replicas: int
    reason: str


@dataclass(frozen=True)
class ScaleDecision:
    """What the pool should have, why, and a short cause for a bounded metric label."""

    desired: int
    current: int
    reason: str
    cause: str = "steady"
    recommendation: int = 0

    @property
    def direction(self) -> str:
        if self.desired > self.current:
            return "up"
        return "down" if self.desired < self.current else "none"


class Autoscaler:
    """Decides one pool's replica count; keeps only its own history, does no I/O."""

    def __init__(
        self,
        spec: Autoscale,
        bounds: ReplicaBounds,
        clock: Clock | None = None,
        initial: int | None = None,
    ) -> None:
        self.spec = spec
        self.bounds = bounds
        self._clock = clock
        self.current = bounds.min if initial is None else initial
        self._history: deque[tuple[float, int]] = deque()
        self._events: deque[tuple[float, int]] = deque()
        self._idle_since: float | None = None

    def decide_now(self, signals: Signals) -> ScaleDecision:
        if self._clock is None:
            raise ValueError("decide_now needs a clock: pass clock= or call decide(now, ...)")
        return self.decide(self._clock(), signals)

    def decide(
        self,
        now: float,
        signals: Signals,
        current: int | None = None,
        cap: ReplicaCap | None = None,
    ) -> ScaleDecision:
        """The desired count now; `current` overrides what the autoscaler last asked for;
        `cap` limits how far it may grow (step 6)."""
        if current is not None:
            self.current = current
        self._track_idleness(now, signals)
        recommendation, reason = self.recommend(signals)
        self._remember(now, recommendation)
        desired, cause, notes = self._shape(now, recommendation, signals)
        if cap is not None:
            desired, cause = self._cap(now, desired, cause, notes, cap)
        decision = ScaleDecision(desired, self.current, "; ".join([reason, *notes]), cause,
                                 recommendation)  # fmt: skip
        if desired != self.current:
            self._events.append((now, desired - self.current))
            self.current = desired
        return decision

    def recommend(self, signals: Signals) -> tuple[int, str]:
        """Target tracking alone, before windows, steps and bounds."""
        metric, target = self.spec.metric, self.spec.target
        value = _metric_value(metric, signals)
        ready = signals.replicas_ready
        if value is None:
            return self.current, f"{metric} unknown: stay at {self.current}"
        if metric in _ADDITIVE:
            wanted = math.ceil(value / target - 1e-9)
            per = value / ready if ready else value
            return wanted, f"{metric} {per:.2f} vs target {target:g} -> {wanted}"
        ratio = value / target
        if ready and abs(ratio - 1) <= _TOLERANCE:
            return self.current, f"{metric} {value:.3g} within 10% of target {target:g}"
        wanted = math.ceil(max(ready, 1) * ratio - 1e-9)
        return wanted, f"{metric} {value:.3g} vs target {target:g} -> {wanted}"

    def _shape(self, now: float, wanted: int, signals: Signals) -> tuple[int, str, list[str]]:
        notes: list[str] = []
        floor, ceiling = self._floor(now), self.bounds.max
        if floor == 0 and self.current == 0 and not signals.has_demand:
            return 0, "at_zero", ["no demand at zero replicas"]
        if self._idle_long_enough(now) and floor == 0:
            return 0, "idle_to_zero", [f"idle for {now - (self._idle_since or now):.0f} s -> 0"]
        if self.current == 0 and signals.has_demand:
            first = max(1, min(wanted, self.spec.up_step))
            desired = min(max(first, floor), ceiling)
            return desired, "from_zero", [f"demand at zero replicas -> {desired} at once"]
        desired, cause = self._stabilize(now, wanted, notes)
        desired, cause = self._limit_steps(now, desired, cause, notes)
        return self._bound(desired, cause, max(floor, 1), ceiling, notes)

    def _stabilize(self, now: float, wanted: int, notes: list[str]) -> tuple[int, str]:
        up = min(self._window(now, self.spec.up_window))
        down = max(self._window(now, self.spec.down_window))
        desired = max(self.current, up)
        desired = min(desired, down)
        if wanted > self.current and desired < wanted:
            notes.append(f"up window {self.spec.up_window:g} s holds {desired}")
            return desired, "stabilizing"
        if wanted < self.current and desired > wanted:
            notes.append(f"down window {self.spec.down_window:g} s holds {desired}")
            return desired, "stabilizing"
        return desired, "target"

    def _window(self, now: float, seconds: float) -> list[int]:
        """Recommendations younger than `seconds`, always with the newest one."""
        return [v for t, v in self._history if now - t < seconds] + [self._history[-1][1]]

    def _limit_steps(
        self, now: float, desired: int, cause: str, notes: list[str]
    ) -> tuple[int, str]:
        spec = self.spec
        if desired > self.current:
            added = sum(d for t, d in self._events if d > 0 and t > now - spec.up_period)
            limit = self.current + max(0, spec.up_step - added)
            if desired > limit:
                notes.append(f"step limit +{spec.up_step}/{spec.up_period:g} s -> {limit}")
                return limit, "step_limit"
        if desired < self.current:
            removed = -sum(d for t, d in self._events if d < 0 and t > now - spec.down_period)
            limit = self.current - max(0, spec.down_step - removed)
            if desired < limit:
                notes.append(f"step limit -{spec.down_step}/{spec.down_period:g} s -> {limit}")
                return limit, "step_limit"
        return desired, cause

    def _bound(
        self, desired: int, cause: str, floor: int, ceiling: int, notes: list[str]
    ) -> tuple[int, str, list[str]]:
        floor = min(floor, ceiling)  # a schedule above max is capped by max
        if desired < floor:
            notes.append(f"floor {floor} (min / schedule / keep one until idle)")
            return floor, "min", notes
        if desired > ceiling:
            notes.append(f"max {ceiling}")
            return ceiling, "max", notes
        return desired, cause, notes

    def _cap(
        self, now: float, desired: int, cause: str, notes: list[str], cap: ReplicaCap
    ) -> tuple[int, str]:
        if desired <= max(cap.replicas, self.current):
            return desired, cause
        floor = min(self._floor(now), self.bounds.max)
        capped = max(cap.replicas, self.current, floor, 1 if self.current == 0 else 0)
        notes.append(f"cap {cap.replicas} ({cap.reason}) -> {capped}")
        return capped, "cap"

    def _floor(self, now: float) -> int:
        scheduled = [w.min for w in active_windows(now, self.spec.schedule)]
        return max([self.bounds.min, *scheduled])

    def _remember(self, now: float, recommendation: int) -> None:
        if not self._history:
            # A (re)started autoscaler counts its current size as a recommendation, so it
            # neither drops nor jumps before a full window of evidence.
            self._history.append((now, self.current))
        self._history.append((now, recommendation))
        horizon = max(self.spec.up_window, self.spec.down_window)
        while self._history[0][0] < now - horizon:
            self._history.popleft()
        period = max(self.spec.up_period, self.spec.down_period)
        while self._events and self._events[0][0] <= now - period:
            self._events.popleft()

    def _track_idleness(self, now: float, signals: Signals) -> None:
        if not signals.is_idle:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now

    def _idle_long_enough(self, now: float) -> bool:
        if self._idle_since is None:
            return False
        idle_period = self.spec.idle_to_zero
        if idle_period is None:
            idle_period = self.spec.down_window
        return now - self._idle_since >= idle_period


def _metric_value(metric: str, signals: Signals) -> float | None:
    if metric == "waiting_per_replica":
        return float(signals.waiting)
    if metric == "in_flight_per_replica":
        return float(signals.in_flight)
    if metric == "ttft_p95":
        return signals.ttft_p95_s
    return signals.kv_usage
