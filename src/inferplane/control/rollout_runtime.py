"""Rollouts at runtime: a canary pool of the new model, its traffic share, gates, rollback.

Every managed pool POOL has a rollout pool beside it, "POOL.rollout" (`with_rollout_pools`),
empty and pinned at zero replicas while no rollout runs, so the gateway knows it from the
start. `start` points the rollout pool at the new model (served under the pool's model name,
so clients change nothing), pins it at one replica and, once that replica is ready, sets the
router's share for the pool to the step's percent. Each controller tick judges the step with
rollout.Rollout over what the gateway counted for each pool since the step began (gate_window)
and carries out the decision: advance (new share, fresh window), hold, complete (the share
stays at 100%: make the model the pool's own in the fleet file), or roll back (share 0, the
canary drained and stopped). Each state is saved with rollout_store, so a restarted controller
resumes at the same step.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

from inferplane.config.schema import FleetConfig, ReplicaBounds, TierPolicy
from inferplane.control import gate_window
from inferplane.control.gate_window import PoolCounts
from inferplane.control.lifecycle import Lifecycle
from inferplane.control.replicas import PoolRuntime, serve_args
from inferplane.control.rollout import Rollout, RolloutDecision, RolloutPlan, RolloutState
from inferplane.control.rollout_store import RolloutStore

log = logging.getLogger(__name__)
SUFFIX = ".rollout"


def rollout_pool(pool: str) -> str:
    return f"{pool}{SUFFIX}"


def with_rollout_pools(fleet: FleetConfig) -> FleetConfig:
    """The fleet plus an empty rollout pool beside each managed pool (idempotent)."""
    pools = dict(fleet.pools)
    for name, spec in fleet.pools.items():
        if spec.is_external or name.endswith(SUFFIX) or rollout_pool(name) in pools:
            continue
        bounds = ReplicaBounds(min=0, max=1)
        pools[rollout_pool(name)] = spec.model_copy(
            update={"replicas": bounds, "tier": TierPolicy()}
        )
    return fleet.model_copy(update={"pools": pools})


@dataclass
class Active:
    """One rollout in progress: its state machine and where the step's window began."""

    rollout: Rollout
    canary_since: PoolCounts = field(default_factory=PoolCounts)
    baseline_since: PoolCounts = field(default_factory=PoolCounts)
    canary_ready: bool = False
    last: RolloutDecision | None = None


class RolloutRunner:
    """The controller's rollouts: started by an operator, judged every tick, saved on disk."""

    def __init__(self, lifecycle: Lifecycle, store: RolloutStore | None) -> None:
        self.lifecycle = lifecycle
        self.store = store
        self.active: dict[str, Active] = {}
        self.finished: dict[str, RolloutState] = {}
        for name, pool in lifecycle.pools.items():
            if name.endswith(SUFFIX):
                pool.pinned = 0

    def resume(self) -> None:
        """Pick up the rollouts a previous controller left running (or complete)."""
        for state in [] if self.store is None else self.store.load_all():
            if state.plan.pool not in self.lifecycle.pools:
                log.warning("stored rollout for unknown pool %s: ignored", state.plan.pool)
            elif state.status == "rolled_back":
                self.finished[state.plan.pool] = state
            else:
                self._begin(Rollout(state))

    def start(self, plan: RolloutPlan) -> RolloutState:
        """Begin a rollout; ValueError (with advice) when the pool or model cannot take one."""
        self._check(plan)
        self.finished.pop(plan.pool, None)
        self._begin(Rollout.start(plan))
        state = self.active[plan.pool].rollout.state
        self._save(state)
        return state

    def abort(self, pool: str, reason: str = "by operator") -> RolloutState:
        active = self.active.get(pool)
        if active is None:
            raise KeyError(f"no rollout is running for pool {pool!r}")
        self._apply(pool, active, active.rollout.abort(reason))
        return active.rollout.state

    def states(self) -> list[RolloutState]:
        running = [a.rollout.state for a in self.active.values()]
        return running + list(self.finished.values())

    def _check(self, plan: RolloutPlan) -> None:
        fleet = self.lifecycle.fleet
        if plan.pool not in self.lifecycle.pools or plan.pool.endswith(SUFFIX):
            managed = ", ".join(n for n in self.lifecycle.pools if not n.endswith(SUFFIX))
            raise ValueError(f"pool {plan.pool!r} is not a managed pool; choose one of {managed}")
        if plan.to_model not in fleet.models:
            known = ", ".join(sorted(fleet.models))
            raise ValueError(
                f"model {plan.to_model!r} is not in the fleet file; add it or use {known}"
            )
        current = self.active.get(plan.pool)
        if current is not None and current.rollout.state.status == "running":
            raise ValueError(f"a rollout is already running for {plan.pool!r}: abort it first")

    def _begin(self, rollout: Rollout) -> None:
        plan, lifecycle = rollout.state.plan, self.lifecycle
        canary = lifecycle.pools[rollout_pool(plan.pool)]
        base_model = lifecycle.pools[plan.pool].spec.model
        args = serve_args(base_model, lifecycle.fleet.models[plan.to_model],
                          lifecycle.config.kv_cache_memory)  # fmt: skip
        canary.replica_spec = type(canary.replica_spec)(canary.name, base_model, args)
        canary.pinned = 1
        self.active[plan.pool] = Active(rollout)
        log.info("rollout of %s to pool %s: %s", plan.to_model, plan.pool, rollout.state.reason)

    # -- each tick --------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        for pool, active in list(self.active.items()):
            if active.rollout.state.status != "running":
                continue
            canary = self.lifecycle.pools[rollout_pool(pool)]
            if not active.canary_ready:
                if not canary.in_phase("ready"):
                    continue  # the step's clock starts once the canary serves
                active.canary_ready = True
                self._fresh_window(pool, active)
                self._share(pool, active.rollout.current_percent)
            windows = self._windows(pool, active)
            self._apply(pool, active, active.rollout.evaluate(now, *windows))

    def _windows(self, pool: str, active: Active) -> tuple[Any, Any]:
        canary = gate_window.window(self._read(rollout_pool(pool)), active.canary_since)
        baseline = gate_window.window(self._read(pool), active.baseline_since)
        return canary, baseline

    def _read(self, pool: str) -> PoolCounts:
        gateway = self.lifecycle.gateway
        metrics = gateway.metrics
        quality = gateway.quality.reading(pool)
        return gate_window.read(metrics.requests, metrics.ttft, pool, quality)

    def _fresh_window(self, pool: str, active: Active) -> None:
        active.canary_since = self._read(rollout_pool(pool))
        active.baseline_since = self._read(pool)

    def _apply(self, pool: str, active: Active, decision: RolloutDecision) -> None:
        if decision.action != "hold":
            log.info("rollout %s: %s (%s)", pool, decision.action, decision.reason)
        active.last = decision
        if decision.action == "advance":
            self._fresh_window(pool, active)
            self._share(pool, decision.percent)
        elif decision.action == "rollback":
            self._roll_back(pool, active)
        self._save(active.rollout.state)

    def _roll_back(self, pool: str, active: Active) -> None:
        self._share(pool, 0.0)
        canary: PoolRuntime = self.lifecycle.pools[rollout_pool(pool)]
        canary.pinned = 0  # the controller drains and stops its replicas
        self.finished[pool] = active.rollout.state
        del self.active[pool]
        self.lifecycle.wake()

    def _share(self, pool: str, percent: float) -> None:
        router = self.lifecycle.gateway.access.router
        router.set_rollout(pool, rollout_pool(pool), percent)

    def _save(self, state: RolloutState) -> None:
        if self.store is not None:
            self.store.save(state)


def describe(state: RolloutState) -> dict[str, Any]:
    """A rollout as JSON for /admin/rollouts and `inferplane rollout status`."""
    plan = state.plan
    return {
        "pool": plan.pool,
        "to": plan.to_model,
        "canary_pool": rollout_pool(plan.pool),
        "status": state.status,
        "step": state.step + 1,
        "steps": list(plan.steps),
        "percent": state.current_percent,
        "hold_s": plan.hold_s,
        "held_s": state.held_s,
        "reason": state.reason,
    }
