"""Model tiers: which models are hot (serving), warm (asleep in host memory) or cold (on disk).

Each model carries a score: its requests, exponentially decayed with a half-life (default
10 min). The score mixes recency and frequency: a model asked for often an hour ago can rank
below one asked for a few times just now, and a single stray request does not outrank a busy
model (bare LRU would). Demotion always picks the lowest score.

- A request for a warm or cold model promotes it to hot (warm -> hot: /admin/wake; cold -> hot:
  start a process) while the request waits. To fit the hot budget (device memory), the
  lowest-scoring other hot models go to sleep (hot -> warm); to fit the warm budget (host
  RAM), the lowest-scoring warm models stop (warm -> cold). A model asked for is never
  demoted to make room for itself; a model bigger than a whole budget is still served.
- `tick` demotes hot models idle for `idle_to_warm` and warm ones idle for `idle_to_cold`
  (keep_warm models stop at warm; keep_hot ones, a pool with a minimum above zero, are never
  demoted), and promotes models inside a prewarm window.
- `promote` / `demote` are the controller's own moves (a pool's minimum, its autoscaler
  going to zero), planned and timed like the others.
- Every transition is timed from the plan to `finished(model)`, which returns
  (model, from, to, seconds) for inference_model_load_seconds{from,to}.
"""

import math
from dataclasses import dataclass, field
from typing import Literal

from inferplane.config.schema import DailyWindow, TierBudgets
from inferplane.control.clock import Clock, active_windows

Tier = Literal["hot", "warm", "cold"]
_GIB = 1024**3
_ACTIONS = {
    ("cold", "hot"): "start",
    ("warm", "hot"): "wake",
    ("hot", "warm"): "sleep",
    ("warm", "cold"): "stop",
    ("hot", "cold"): "stop",
    ("cold", "warm"): "start_asleep",
}


@dataclass(frozen=True)
class TierModel:
    name: str
    hot_bytes: int  # device memory when serving
    warm_bytes: int  # host memory when asleep (its weights)
    keep_warm: bool = False
    keep_hot: bool = False
    prewarm: tuple[DailyWindow, ...] = ()


@dataclass(frozen=True)
class Transition:
    model: str
    source: Tier
    target: Tier
    reason: str

    @property
    def action(self) -> str:
        """What the actuator does: start, wake, sleep, stop or start_asleep."""
        return _ACTIONS[(self.source, self.target)]


@dataclass(frozen=True)
class TransitionTiming:
    model: str
    source: Tier
    target: Tier
    seconds: float


@dataclass
class _State:
    spec: TierModel
    tier: Tier = "cold"
    score: float = 0.0
    scored_at: float = 0.0
    last_request: float = -math.inf
    pending: tuple[Tier, Tier, float] | None = None
    notes: list[str] = field(default_factory=list)


class TierManager:
    """Plans tier transitions; the controller carries them out and reports them finished."""

    def __init__(
        self, models: list[TierModel], budgets: TierBudgets, clock: Clock, half_life_s: float = 600
    ) -> None:
        self._models = {model.name: _State(model) for model in models}
        self._budgets = budgets
        self._clock = clock
        self._half_life = half_life_s

    def tier(self, model: str) -> Tier:
        return self._models[model].tier

    def score(self, model: str) -> float:
        state = self._models[model]
        elapsed = self._clock() - state.scored_at
        decay: float = 0.5 ** (elapsed / self._half_life)
        return state.score * decay

    def on_request(self, model: str) -> list[Transition]:
        """Count a request; promote its model to hot when it is not, making room first."""
        state, now = self._models[model], self._clock()
        state.score, state.scored_at = self.score(model) + 1.0, now
        state.last_request = now
        if state.tier == "hot":
            return []
        return self._promote(model, f"request for a {state.tier} model")

    def busy(self, model: str) -> None:
        """Requests are still waiting or in flight: the model is not idle (no score added)."""
        state = self._models[model]
        state.last_request = max(state.last_request, self._clock())

    def promote(self, model: str, reason: str) -> list[Transition]:
        """Bring a model to hot without counting a request (a minimum, an operator)."""
        state = self._models[model]
        state.last_request = max(state.last_request, self._clock())  # idle from now on
        return [] if state.tier == "hot" else self._promote(model, reason)

    def demote(self, model: str, target: Tier, reason: str) -> list[Transition]:
        """Take a model down to `target` (never below warm when keep_warm, never when
        keep_hot); empty when that is no move."""
        state = self._models[model]
        if state.spec.keep_warm and target == "cold":
            target = "warm"
        order = ("cold", "warm", "hot")
        if state.spec.keep_hot or order.index(target) >= order.index(state.tier):
            return []
        return [self._move(model, target, reason)]

    def pending_target(self, model: str) -> Tier | None:
        """Where the model's unfinished transition goes, if one is under way."""
        pending = self._models[model].pending
        return None if pending is None else pending[1]

    def tick(self) -> list[Transition]:
        """Idle demotions and prewarm promotions due now."""
        now, plan = self._clock(), []
        for name, state in self._models.items():
            idle = now - state.last_request
            if active_windows(now, state.spec.prewarm):
                if state.tier != "hot":
                    plan += self._promote(name, "prewarm window")
            elif state.spec.keep_hot:
                continue
            elif state.tier == "hot" and idle >= self._budgets.idle_to_warm:
                plan.append(self._move(name, "warm", f"idle {idle:.0f} s"))
            elif (
                state.tier == "warm"
                and idle >= self._budgets.idle_to_cold
                and not state.spec.keep_warm
            ):
                plan.append(self._move(name, "cold", f"idle {idle:.0f} s"))
        return plan

    def finished(self, model: str) -> TransitionTiming | None:
        """The actuator finished the model's last transition: how long it took."""
        state = self._models[model]
        if state.pending is None:
            return None
        source, target, started = state.pending
        state.pending = None
        return TransitionTiming(model, source, target, self._clock() - started)

    def _promote(self, model: str, reason: str) -> list[Transition]:
        plan = self._make_room(model, "hot")
        plan.append(self._move(model, "hot", reason))
        plan += self._make_room(model, "warm")
        return plan

    def _make_room(self, keep: str, tier: Tier) -> list[Transition]:
        budget = self._budget_bytes(tier)
        if budget is None:
            return []
        plan = []
        while self._used(tier, keep) > budget:
            victims = [n for n in self._models if n != keep and self._demotable(n, tier)]
            if not victims:
                break
            victim = min(victims, key=lambda name: (self.score(name), name))
            target: Tier = "warm" if tier == "hot" else "cold"
            plan.append(self._move(victim, target, f"{tier} memory budget, lowest score"))
        return plan

    def _demotable(self, name: str, tier: Tier) -> bool:
        spec = self._models[name].spec
        if self._models[name].tier != tier or spec.keep_hot:
            return False
        return not (tier == "warm" and spec.keep_warm)

    def _used(self, tier: Tier, incoming: str) -> int:
        used = 0
        for name, state in self._models.items():
            if state.tier == tier or (name == incoming and tier == "hot"):
                used += state.spec.hot_bytes if tier == "hot" else state.spec.warm_bytes
        return used

    def _budget_bytes(self, tier: Tier) -> int | None:
        gib = self._budgets.hot_gib if tier == "hot" else self._budgets.warm_gib
        return None if gib is None else int(gib * _GIB)

    def _move(self, model: str, target: Tier, reason: str) -> Transition:
        state = self._models[model]
        transition = Transition(model, state.tier, target, reason)
        state.pending = (state.tier, target, self._clock())
        state.tier = target
        return transition
