"""Model tiers at runtime: the controller's TierManager, fed with requests, carried out on
replicas through the lifecycle, every transition timed into
inference_model_load_seconds{model,from,to}.

Each managed pool is tracked under its own name (a rollout's canary pool is not: the rollout
sizes it); metrics carry the pool's model. A transition is a move of the whole pool:

- cold -> hot (start): one replica starts, unless one is already up or starting;
- warm -> hot (wake): the sleeping replica gets /admin/wake (none asleep: one starts);
- hot -> warm (sleep): one replica gets /admin/sleep and stays, the others drain and stop;
- warm / hot -> cold (stop): every replica drains and stops.

A pool with a minimum above zero is `keep_hot` (never demoted); `tier.keep_warm` never goes
cold; `tier.prewarm` windows promote ahead of traffic. Requests feed the scores: a request
held at a pool with no routable replica counts (and promotes it while it waits), then the
gateway's finished-request counter counts the rest. A promotion is timed from the plan to
the replica answering /ready; a demotion to the sleep call or the last stop returning.

Memory per model, for the `tiers:` budgets: the planner's VRAM formula (weights + KV cache
for one sequence of the model's context + activations + overhead) when hot, its weights when
warm. Computed only when a budget is set, since it reads the model's shape.
"""

import asyncio
import logging

from inferplane.config.schema import FleetConfig, TierBudgets
from inferplane.control.lifecycle import Lifecycle
from inferplane.control.replicas import Managed, PoolRuntime
from inferplane.control.rollout_runtime import SUFFIX
from inferplane.control.tiers import Tier, TierManager, TierModel, Transition

log = logging.getLogger(__name__)


def memory_need(fleet: FleetConfig, model: str) -> tuple[int, int]:
    """(hot bytes, warm bytes) from the planner's VRAM formula; (0, 0) when unknown."""
    from inferplane.control.demand import served_model  # noqa: PLC0415  (may import torch)
    from inferplane.planner.vram import memory_breakdown  # noqa: PLC0415

    try:
        breakdown = memory_breakdown(served_model(model, fleet.models[model]), batch=1)
    except (OSError, ValueError, KeyError) as error:
        log.warning("model %s: no memory estimate for the tier budgets (%s)", model, error)
        return 0, 0
    return breakdown.total_bytes, breakdown.weights_bytes


def tier_models(fleet: FleetConfig, pools: list[str]) -> list[TierModel]:
    budgeted = fleet.tiers.hot_gib is not None or fleet.tiers.warm_gib is not None
    models = []
    for name in pools:
        spec = fleet.pools[name]
        hot, warm = memory_need(fleet, spec.model) if budgeted else (0, 0)
        policy = spec.tier
        models.append(TierModel(name, hot, warm, policy.keep_warm, spec.replicas.min > 0,
                                policy.prewarm))  # fmt: skip
    return models


class TierRuntime:
    """Plans with a TierManager and carries the plan out through the replica lifecycle."""

    def __init__(self, lifecycle: Lifecycle, budgets: TierBudgets) -> None:
        self.lifecycle = lifecycle
        self.tracked = {name for name in lifecycle.pools if not name.endswith(SUFFIX)}
        models = tier_models(lifecycle.fleet, sorted(self.tracked))
        self.manager = TierManager(models, budgets, lifecycle.clock)

    def tier(self, pool: PoolRuntime) -> Tier:
        return self.manager.tier(pool.name) if pool.name in self.tracked else pool.tier

    def start(self) -> None:
        """Pools with a minimum are hot from the start (their replicas are starting)."""
        for name in sorted(self.tracked):
            pool = self.lifecycle.pools[name]
            if pool.spec.replicas.min > 0:
                self.carry_out(self.manager.promote(name, f"minimum {pool.spec.replicas.min}"))

    def tick(self) -> None:
        for name in self.tracked:
            if self._busy(self.lifecycle.pools[name]):
                self.manager.busy(name)
        self.carry_out(self.manager.tick())

    def _busy(self, pool: PoolRuntime) -> bool:
        replicas = self.lifecycle.gateway.registry.replicas(pool.name)
        return pool.held > 0 or any(r.in_flight or r.waiting or r.running for r in replicas)

    def request(self, pool: PoolRuntime) -> None:
        """A request is held for the pool: count it, and promote the pool while it waits."""
        if pool.name in self.tracked:
            pool.scored_holds += 1
            self.carry_out(self.manager.on_request(pool.name))

    def arrivals(self, pool: PoolRuntime, count: int) -> None:
        """Requests the gateway finished for the pool (those already counted held skipped)."""
        if pool.name not in self.tracked:
            return
        skipped = min(count, pool.scored_holds)
        pool.scored_holds -= skipped
        for _ in range(count - skipped):
            self.carry_out(self.manager.on_request(pool.name))

    def to_zero(self, pool: PoolRuntime, reason: str) -> bool:
        """The autoscaler wants no replica: demote (warm with keep_warm, else cold)."""
        if pool.name not in self.tracked:
            return False
        target: Tier = "warm" if pool.spec.tier.keep_warm else "cold"
        self.carry_out(self.manager.demote(pool.name, target, f"autoscaler: {reason}"))
        return True

    def finish(self, pool: PoolRuntime, target: Tier) -> bool:
        """The pool reached `target`: observe its transition if that is the one under way."""
        if pool.name not in self.tracked or self.manager.pending_target(pool.name) != target:
            return False
        timing = self.manager.finished(pool.name)
        if timing is None:
            return False
        self.lifecycle.metrics.load_seconds.labels(
            pool.spec.model, timing.source, timing.target
        ).observe(timing.seconds)
        log.info("model %s (pool %s): %s -> %s in %.2f s", pool.spec.model, pool.name,
                 timing.source, timing.target, timing.seconds)  # fmt: skip
        return True

    def reached_hot(self, pool: PoolRuntime) -> bool:
        """A replica of the pool became ready: True when that finished the pool's promotion
        (timed here), False when the replica is to be timed on its own."""
        return self.finish(pool, "hot")

    # -- carrying transitions out -------------------------------------------------------------

    def carry_out(self, plan: list[Transition]) -> None:
        for step in plan:
            pool = self.lifecycle.pools[step.model]
            log.info("model %s (pool %s): %s -> %s (%s)", pool.spec.model, pool.name,
                     step.source, step.target, step.reason)  # fmt: skip
            if step.target == "hot":
                self._promote(pool, step.source)
            elif step.target == "warm":
                self._sleep(pool)
            else:
                self._stop(pool)

    def _promote(self, pool: PoolRuntime, source: Tier) -> None:
        if pool.in_phase("starting", "ready"):
            return  # already coming up: the first ready replica finishes the transition
        sleeping = pool.in_phase("sleeping")
        if source == "warm" and sleeping:
            self.lifecycle.wake_replica(sleeping[0])
        else:
            self.lifecycle.start_replica(pool, "cold")

    def _sleep(self, pool: PoolRuntime) -> None:
        pool.restarts_due.clear()
        up, starting = pool.in_phase("ready"), pool.in_phase("starting")
        if not up:  # no loaded replica to put to sleep: the pool goes straight to cold
            self.carry_out(self.manager.demote(pool.name, "cold", "no ready replica to sleep"))
            return
        keep, rest = up[0], up[1:] + starting
        sleep_call = self.lifecycle.put_to_sleep(pool, keep)
        self.lifecycle.set_phase(pool, rest, "draining")
        self.lifecycle.spawn(self._sleep_then_finish(pool, sleep_call, rest))

    async def _sleep_then_finish(
        self, pool: PoolRuntime, sleep_call: "asyncio.Task[None]", rest: list[Managed]
    ) -> None:
        await asyncio.gather(sleep_call, *(self.lifecycle.drain(m) for m in rest))
        self.finish(pool, "warm")

    def _stop(self, pool: PoolRuntime) -> None:
        pool.restarts_due.clear()
        replicas = pool.in_phase("ready", "starting", "sleeping")
        self.lifecycle.set_phase(pool, replicas, "draining")
        self.lifecycle.spawn(self._stop_then_finish(pool, replicas))

    async def _stop_then_finish(self, pool: PoolRuntime, replicas: list[Managed]) -> None:
        await asyncio.gather(*(self.lifecycle.drain(m) for m in replicas))
        self.finish(pool, "cold")
