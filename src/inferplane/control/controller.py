"""The control loop: per managed pool, every `interval_s`, sense and decide; the replica
lifecycle (control/lifecycle) carries the decisions out.

Each tick: reap what exited, restart what is due, probe starting replicas, then per pool build
its Signals (control/signals.pool_signals over the gateway's records, arrivals, held requests),
ask the autoscaler (or the rollout's pin, or the pool's tier), and resize: which replicas come
and go is control/resize's pure choice. Scaling up wakes a sleeping (warm) replica first, else
starts one (cold); scaling down drains a replica (out of the balancer, its requests finish,
then SIGTERM), so no request is killed.

Model tiers (tier_runtime): each managed pool is hot, warm or cold in a TierManager fed with
its requests. While a pool is warm or cold the autoscaler is not asked; when the autoscaler
of a hot pool goes to zero, the pool is demoted instead (warm with `tier.keep_warm`, else
cold).

With a core book (CPU replicas pinned on this host) the autoscaler of a CPU pool is capped
at the replicas the free cores hold, and its decision's reason says so.

A request for a pool with no routable replica reaches `hold`: it counts as demand (and
promotes a warm or cold pool), wakes the loop at once, and waits in the pool's HoldQueue
(bounded count, bounded time) for a replica to become ready.
"""

import asyncio
import contextlib
import logging
import time

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import Actuator
from inferplane.control.autoscaler import ScaleDecision
from inferplane.control.clock import Clock
from inferplane.control.core_book import CoreBook
from inferplane.control.lifecycle import Lifecycle
from inferplane.control.metrics import ControlMetrics
from inferplane.control.replicas import PoolRuntime
from inferplane.control.resize import scale_down, scale_up
from inferplane.control.rollout_runtime import RolloutRunner
from inferplane.control.rollout_store import RolloutStore
from inferplane.control.settings import ControllerConfig
from inferplane.control.signals import Signals, pool_signals
from inferplane.control.tier_runtime import TierRuntime
from inferplane.gateway.state import GatewayState

__all__ = ["Controller", "ControllerConfig"]
log = logging.getLogger(__name__)


class Controller:
    """Senses and decides for the managed pools of a fleet; a Lifecycle acts on an actuator."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        fleet: FleetConfig,
        gateway: GatewayState,
        actuator: Actuator,
        config: ControllerConfig | None = None,
        clock: Clock = time.time,
        metrics: ControlMetrics | None = None,
        cores: CoreBook | None = None,
    ) -> None:
        self.fleet = fleet
        self.gateway = gateway
        self.config = config or ControllerConfig()
        self.clock = clock
        self.metrics = metrics or ControlMetrics(gateway.metrics.registry)
        self._wake = asyncio.Event()
        self.lifecycle = Lifecycle(fleet, gateway, actuator, self.config, clock, self.metrics,
                                   self.wake, cores=cores)  # fmt: skip
        self.pools = self.lifecycle.pools
        gateway.proxy.on_empty = self.hold
        gateway.proxy.on_ttft = self._observe_ttft
        store = None if self.config.rollout_dir is None else RolloutStore(self.config.rollout_dir)
        self.rollouts = RolloutRunner(self.lifecycle, store)
        self.tiers = TierRuntime(self.lifecycle, fleet.tiers)
        self.lifecycle.on_hot = self.tiers.reached_hot

    def _observe_ttft(self, pool_name: str, seconds: float) -> None:
        """Streams' TTFT as the gateway saw it, for `autoscale.metric: ttft_p95`."""
        pool = self.pools.get(pool_name)
        if pool is not None:
            pool.window.observe_ttft(self.clock(), seconds)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Start each pool's minimum at once, resume stored rollouts, then tick until cancelled."""
        self.rollouts.resume()
        for pool in self.pools.values():
            for _ in range(pool.spec.replicas.min):
                self.lifecycle.start(pool, "cold")
        self.tiers.start()
        while True:
            await self.tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.interval_s):
                    await self._wake.wait()
            self._wake.clear()

    async def tick(self) -> None:
        self.lifecycle.reap()
        self.tiers.tick()
        await asyncio.gather(*(self._tick_pool(pool) for pool in self.pools.values()))
        self.rollouts.tick(self.clock())

    def wake(self) -> None:
        """Tick now rather than at the next interval."""
        self._wake.set()

    async def _tick_pool(self, pool: PoolRuntime) -> None:
        now = self.clock()
        self.lifecycle.restart_due(pool, now)
        await self.lifecycle.probe(pool, now)
        decision = self._decide(pool, now, self._signals(pool, now))
        self._record(pool, decision)
        if decision.desired == 0 < pool.active and self.tiers.to_zero(pool, decision.reason):
            return
        self._resize(pool, decision.desired - pool.active)

    def _decide(self, pool: PoolRuntime, now: float, signals: Signals) -> ScaleDecision:
        tier = self.tiers.tier(pool)
        if pool.pinned is not None:  # a rollout's canary: the rollout decides its size
            return ScaleDecision(pool.pinned, pool.active, "pinned by rollout", "rollout")
        if tier != "hot":  # asleep or on disk: a request promotes it (hold)
            return ScaleDecision(pool.active, pool.active, f"model is {tier}", "tier")
        cap = self.lifecycle.core_cap(pool)
        return pool.autoscaler.decide(now, signals, current=pool.active, cap=cap)

    def _record(self, pool: PoolRuntime, decision: ScaleDecision) -> None:
        pool.last_decision = decision
        self.metrics.decided(pool.name, decision)
        if decision.direction != "none":
            log.info("pool %s: %d -> %d (%s)", pool.name, decision.current, decision.desired,
                     decision.reason)  # fmt: skip

    def _signals(self, pool: PoolRuntime, now: float) -> Signals:
        total = self.metrics.pool_requests(self.gateway.metrics.requests, pool.name)
        arrived = int(total - pool.arrivals_seen)
        pool.arrivals_seen = total
        self.tiers.arrivals(pool, arrived)
        queued = refused = 0
        gate = self.gateway.proxy.gate
        if gate is not None:  # what the overload gate queued or refused is demand too
            demand = gate.demand(pool.name)
            queued, refused = demand.queued, demand.refused - pool.refusals_seen
            pool.refusals_seen = demand.refused
        held_new, pool.holds_since_tick = pool.holds_since_tick, 0
        return pool_signals(self.gateway.registry.replicas(pool.name),
                            arrivals=arrived + held_new, held=pool.held,
                            ttft_p95_s=pool.window.ttft_p95(now),
                            queued=queued, refused=refused)  # fmt: skip

    def _resize(self, pool: PoolRuntime, change: int) -> None:
        candidates = self.lifecycle.candidates(pool)
        if change > 0:
            self.lifecycle.grow(pool, scale_up(candidates, change))
        elif change < 0:
            keep_warm = pool.spec.tier.keep_warm
            plan = scale_down(candidates, -change, restarts_due=len(pool.restarts_due),
                              keep_warm=keep_warm)  # fmt: skip
            self.lifecycle.shrink(pool, plan)

    # -- holding requests while a replica comes up ------------------------------------------

    async def hold(self, pool_name: str) -> bool:
        """The gateway found no routable replica: count the demand, wake the loop, and wait
        until one is ready (True) or the hold times out or is full (False: the client gets
        503 that says no healthy replica)."""
        pool = self.pools.get(pool_name)
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if pool is None or not pool.holds.hold(waiter, self.clock()):
            return False
        pool.holds_since_tick += 1
        self.tiers.request(pool)
        self.wake()
        if pool.in_phase("ready"):  # one is ready already: go ahead at once
            self.lifecycle.release(pool)
        try:
            async with asyncio.timeout(pool.holds.timeout_s):
                return await waiter
        except TimeoutError:
            return False
        finally:
            pool.holds.discard(waiter)

    async def close(self) -> None:
        """Stop every replica (drained) and the background work; no child outlives this."""
        await self.lifecycle.close()
