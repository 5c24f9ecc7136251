"""Progressive rollout of a new model to a pool: steps of canary traffic, gates, rollback.

A rollout moves a pool's traffic to a canary in steps (5, 25, 50, 100 percent by default).
At each step it holds for `hold_s` seconds of controller time, then judges the canary against
the baseline over that step's metrics (`WindowMetrics`, which the controller collects since
the step began). The canary regresses, and the rollout rolls back at once, when

    error rate   canary > baseline + error_margin  and  canary > error_floor
    TTFT p95     canary > baseline x (1 + latency_tolerance) + latency_slack_s
    TPOT p95     the same rule

and, where the plan sets the quality gates (off by default), when

    mean logprob      canary < baseline - logprob_drop      (the model is less sure of itself)
    feedback rate     canary > baseline + feedback_margin   (negative events per request)
    drift score       canary > baseline + drift_margin

No judgement is made on fewer than `min_requests` canary requests: the step holds until it has
them. When the baseline has too few requests (at 100% it has none) the last baseline that had
enough stands in for it. A step that passes advances; passing the last step completes the
rollout. Hold time is counted between evaluations, so a restarted controller resumes the step
with the hold time it had left (the state lives in rollout_store).
"""

from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Literal

Status = Literal["running", "complete", "rolled_back"]
Action = Literal["advance", "hold", "rollback", "complete"]
DEFAULT_STEPS = (5.0, 25.0, 50.0, 100.0)


@dataclass(frozen=True)
class Gates:
    min_requests: int = 50
    error_margin: float = 0.02
    error_floor: float = 0.01
    latency_tolerance: float = 0.2
    latency_slack_s: float = 0.005
    logprob_drop: float | None = None  # nats of mean token logprob; None: no confidence gate
    feedback_margin: float | None = None  # negative feedback per request; None: no gate
    drift_margin: float | None = None  # drift score; None: no drift gate


@dataclass(frozen=True)
class WindowMetrics:
    """One side's requests, errors and latency percentiles over the current step."""

    requests: int = 0
    errors: int = 0
    ttft_p95_s: float | None = None
    tpot_p95_s: float | None = None
    mean_logprob: float | None = None  # mean over answers of their mean token logprob
    negative_feedback_rate: float | None = None  # negative feedback events per request
    drift_score: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class RolloutPlan:
    pool: str
    to_model: str
    steps: tuple[float, ...] = DEFAULT_STEPS
    hold_s: float = 120.0
    gates: Gates = Gates()

    def __post_init__(self) -> None:
        steps = self.steps
        if not steps or any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f"rollout steps must increase, like 5,25,50,100 (got {steps})")
        if steps[0] <= 0 or steps[-1] != 100:
            raise ValueError(f"rollout steps must be above 0 and end at 100 (got {steps})")
        if self.hold_s < 0:
            raise ValueError(f"hold must be >= 0 seconds (got {self.hold_s})")


@dataclass(frozen=True)
class RolloutState:
    """Everything a restarted controller needs to resume a rollout."""

    plan: RolloutPlan
    status: Status = "running"
    step: int = 0
    held_s: float = 0.0
    reason: str = "started"
    reference: WindowMetrics | None = None  # the last baseline with enough requests

    @property
    def current_percent(self) -> float:
        """The canary's share of traffic now, for the gateway's canary rule."""
        if self.status == "rolled_back":
            return 0.0
        if self.status == "complete":
            return 100.0
        return self.plan.steps[self.step]


@dataclass(frozen=True)
class RolloutDecision:
    action: Action
    percent: float
    reason: str


class Rollout:
    """The state machine of one rollout; `evaluate` is pure but for its own state."""

    def __init__(self, state: RolloutState) -> None:
        self.state = state
        self._last: float | None = None

    @classmethod
    def start(cls, plan: RolloutPlan) -> "Rollout":
        return cls(RolloutState(plan))

    @property
    def current_percent(self) -> float:
        return self.state.current_percent

    def evaluate(
        self, now: float, canary: WindowMetrics, baseline: WindowMetrics
    ) -> RolloutDecision:
        state = self.state
        if state.status != "running":
            action: Action = "complete" if state.status == "complete" else "rollback"
            return RolloutDecision(action, state.current_percent, state.reason)
        held = state.held_s + (0.0 if self._last is None else max(0.0, now - self._last))
        self._last = now
        reference = _reference(state, baseline)
        self.state = replace(state, held_s=held, reference=reference)
        if canary.requests >= state.plan.gates.min_requests and reference is not None:
            regression = regressions(state.plan.gates, canary, reference)
            if regression:
                return self._finish("rolled_back", "rollback", "; ".join(regression))
        return self._hold_or_advance(canary)

    def abort(self, reason: str) -> RolloutDecision:
        """An operator's rollback."""
        return self._finish("rolled_back", "rollback", f"aborted: {reason}")

    def _hold_or_advance(self, canary: WindowMetrics) -> RolloutDecision:
        state, plan = self.state, self.state.plan
        where = f"step {state.step + 1}/{len(plan.steps)} at {state.current_percent:g}%"
        if state.held_s < plan.hold_s:
            reason = f"holding {where}: {state.held_s:.0f} s of {plan.hold_s:.0f} s"
            return self._hold(reason)
        if canary.requests < plan.gates.min_requests:
            need = plan.gates.min_requests
            return self._hold(f"holding {where}: {canary.requests} of {need} canary requests")
        if state.reference is None:
            return self._hold(f"holding {where}: no baseline with enough requests yet")
        if state.step + 1 == len(plan.steps):
            return self._finish("complete", "complete", f"{where} passed its gates: complete")
        self.state = replace(state, step=state.step + 1, held_s=0.0,
                             reason=f"{where} passed its gates")  # fmt: skip
        return RolloutDecision("advance", self.state.current_percent, self.state.reason)

    def _hold(self, reason: str) -> RolloutDecision:
        self.state = replace(self.state, reason=reason)
        return RolloutDecision("hold", self.state.current_percent, reason)

    def _finish(self, status: Status, action: Action, reason: str) -> RolloutDecision:
        self.state = replace(self.state, status=status, reason=reason)
        return RolloutDecision(action, self.state.current_percent, reason)


def _reference(state: RolloutState, baseline: WindowMetrics) -> WindowMetrics | None:
    if baseline.requests >= state.plan.gates.min_requests:
        return baseline
    return state.reference


def regressions(gates: Gates, canary: WindowMetrics, baseline: WindowMetrics) -> list[str]:
    """Why the canary is worse than the baseline; empty when it is not."""
    found = []
    rate, base = canary.error_rate, baseline.error_rate
    if rate > base + gates.error_margin and rate > gates.error_floor:
        found.append(
            f"error rate {rate:.1%} vs baseline {base:.1%} (margin {gates.error_margin:.1%})"
        )
    pairs = (("TTFT", canary.ttft_p95_s, baseline.ttft_p95_s),
             ("TPOT", canary.tpot_p95_s, baseline.tpot_p95_s))  # fmt: skip
    for name, mine, theirs in pairs:
        if mine is None or theirs is None:
            continue
        limit = theirs * (1 + gates.latency_tolerance) + gates.latency_slack_s
        if mine > limit:
            found.append(f"{name} p95 {mine * 1e3:.0f} ms vs baseline {theirs * 1e3:.0f} ms "
                         f"(limit {limit * 1e3:.0f} ms)")  # fmt: skip
    return found + quality_regressions(gates, canary, baseline)


def quality_regressions(gates: Gates, canary: WindowMetrics, baseline: WindowMetrics) -> list[str]:
    """The quality gates the plan sets: confidence, negative feedback and input drift."""
    found = []
    mine, theirs = canary.mean_logprob, baseline.mean_logprob
    drop = gates.logprob_drop
    if drop is not None and mine is not None and theirs is not None and mine < theirs - drop:
        found.append(f"mean logprob {mine:.3f} vs baseline {theirs:.3f} "
                     f"(allowed drop {drop:g})")  # fmt: skip
    pairs = (
        ("negative feedback rate", canary.negative_feedback_rate,
         baseline.negative_feedback_rate, gates.feedback_margin),
        ("drift score", canary.drift_score, baseline.drift_score, gates.drift_margin),
    )  # fmt: skip
    for name, value, base, margin in pairs:
        if margin is not None and value is not None and base is not None and value > base + margin:
            found.append(f"{name} {value:.3f} vs baseline {base:.3f} (margin {margin:g})")
    return found
