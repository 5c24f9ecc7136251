"""The control loop: per managed pool, every `interval_s`, restart what crashed (with backoff),
admit replicas that became ready into the gateway, gather signals, ask the autoscaler, act.

Acting: scaling up wakes a sleeping (warm) replica first, else starts one (cold). Scaling down
takes a replica out of the balancer, waits for the gateway's requests on it to finish, then
SIGTERMs it (the server drains what it still holds and exits 0): no request is killed.

Model tiers (tier_runtime): each managed pool is hot, warm or cold in a TierManager fed with
its requests. While a pool is warm or cold the autoscaler is not asked; when the autoscaler
of a hot pool goes to zero, the pool is demoted instead (warm with `tier.keep_warm`, else
cold). Idle demotion, memory budgets and prewarm windows come from the TierManager. Every
transition is timed into inference_model_load_seconds{model,from,to}; a replica brought up
outside a transition (scale-up, restart) is observed as its own cold -> hot.

A request for a pool with no routable replica reaches `hold`: it counts as demand (and
promotes a warm or cold pool), wakes the loop at once, and waits (bounded count, bounded
time) for a replica to become ready.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace

import httpx

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import Actuator, Backoff, BackoffConfig, ReplicaHandle
from inferplane.control.autoscaler import Autoscaler, ScaleDecision
from inferplane.control.clock import Clock
from inferplane.control.metrics import ControlMetrics
from inferplane.control.replicas import Managed, Phase, PoolRuntime, Tier, replica_spec
from inferplane.control.rollout_runtime import RolloutRunner
from inferplane.control.rollout_store import RolloutStore
from inferplane.control.signals import ReplicaLoad, Signals, SignalWindow
from inferplane.control.tier_runtime import TierRuntime
from inferplane.gateway.routing.registry import Replica, replica_id
from inferplane.gateway.state import GatewayState

log = logging.getLogger(__name__)
DRAIN_POLL_S = 0.05


@dataclass(frozen=True)
class ControllerConfig:
    interval_s: float = 1.0
    ready_timeout_s: float = 300.0  # a replica not ready by then is killed and restarted
    probe_timeout_s: float = 1.0
    hold_timeout_s: float = 60.0  # how long a request waits for a replica to come up
    max_held: int = 256  # requests held per pool before 503
    drain_grace_s: float = 30.0
    kv_cache_memory: str = "256MiB"
    admin_key: str = ""
    rollout_dir: str | None = None  # where rollout state is kept; None: in memory only
    backoff: BackoffConfig = field(default_factory=BackoffConfig)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.hold_timeout_s <= 0 or self.ready_timeout_s <= 0:
            raise ValueError("controller interval and timeouts must be > 0 seconds, e.g. 1.0")
        if self.max_held < 0:
            raise ValueError(f"max_held must be >= 0, got {self.max_held}")


class Controller:
    """Runs the managed pools of a fleet through an actuator, feeding a gateway's registry."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        fleet: FleetConfig,
        gateway: GatewayState,
        actuator: Actuator,
        config: ControllerConfig | None = None,
        clock: Clock = time.time,
        metrics: ControlMetrics | None = None,
    ) -> None:
        self.fleet = fleet
        self.gateway = gateway
        self.actuator = actuator
        self.config = config or ControllerConfig()
        self.clock = clock
        self.metrics = metrics or ControlMetrics(gateway.metrics.registry)
        self.pools = {
            name: self._runtime(name) for name, spec in fleet.pools.items() if not spec.is_external
        }
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(timeout=self.config.probe_timeout_s)
        gateway.proxy.on_empty = self.hold
        gateway.proxy.on_ttft = self._observe_ttft
        store = None if self.config.rollout_dir is None else RolloutStore(self.config.rollout_dir)
        self.rollouts = RolloutRunner(self, store)
        self.tiers = TierRuntime(self, fleet.tiers)

    def _runtime(self, name: str) -> PoolRuntime:
        spec = self.fleet.pools[name]
        model = self.fleet.models[spec.model]
        rspec = replica_spec(name, spec, model, self.config.kv_cache_memory)
        scaler = Autoscaler(spec.autoscale, spec.replicas, self.clock, initial=0)
        return PoolRuntime(name, spec, rspec, scaler, SignalWindow(), Backoff(self.config.backoff))

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
                self._start(pool, "cold")
        self.tiers.start()
        while True:
            await self.tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.interval_s):
                    await self._wake.wait()
            self._wake.clear()

    async def tick(self) -> None:
        self._reap()
        self.tiers.tick()
        await asyncio.gather(*(self._tick_pool(pool) for pool in self.pools.values()))
        self.rollouts.tick(self.clock())

    def wake(self) -> None:
        """Tick now rather than at the next interval."""
        self._wake.set()

    async def _tick_pool(self, pool: PoolRuntime) -> None:
        now = self.clock()
        self._restart_due(pool, now)
        await self._probe_starting(pool, now)
        signals = self._signals(pool, now)
        tier = self.tiers.tier(pool)
        if pool.pinned is not None:  # a rollout's canary: the rollout decides its size
            decision = ScaleDecision(pool.pinned, pool.active, "pinned by rollout", "rollout")
        elif tier != "hot":  # asleep or on disk: a request promotes it (hold)
            decision = ScaleDecision(pool.active, pool.active, f"model is {tier}", "tier")
        else:
            decision = pool.autoscaler.decide(now, signals, current=pool.active)
        self._record(pool, decision)
        if decision.desired == 0 < pool.active and self.tiers.to_zero(pool, decision.reason):
            return
        await self._act(pool, decision)

    def _record(self, pool: PoolRuntime, decision: ScaleDecision) -> None:
        pool.last_decision = decision
        self.metrics.decided(pool.name, decision)
        if decision.direction != "none":
            log.info("pool %s: %d -> %d (%s)", pool.name, decision.current, decision.desired,
                     decision.reason)  # fmt: skip

    # -- crashes and restarts ---------------------------------------------------------------

    def _reap(self) -> None:
        for handle in self.actuator.reap():
            pool = self.pools.get(handle.spec.pool)
            managed = None if pool is None else pool.replicas.pop(handle.id, None)
            if pool is None or managed is None:
                continue
            self._publish(pool)
            if not handle.expected_exit:
                self._schedule_restart(pool, handle)

    def _schedule_restart(self, pool: PoolRuntime, handle: ReplicaHandle) -> None:
        delay = pool.backoff.next_delay(self.clock() - handle.started_at)
        log.warning("replica %s exited with %s; restart in %.1f s (log: %s)", handle.id,
                    handle.returncode, delay, handle.log_path)  # fmt: skip
        pool.restarts_due.append(self.clock() + delay)
        self.metrics.restarts.labels(pool.name).inc()
        pool.restarts += 1

    def _restart_due(self, pool: PoolRuntime, now: float) -> None:
        due = [at for at in pool.restarts_due if at <= now]
        pool.restarts_due = [at for at in pool.restarts_due if at > now]
        for _ in due:
            self._start(pool, "cold")

    # -- readiness --------------------------------------------------------------------------

    def _start(self, pool: PoolRuntime, tier: Tier) -> None:
        handle = self.actuator.start(pool.replica_spec)
        pool.replicas[handle.id] = Managed(handle, "starting", self.clock(), tier)

    def start_replica(self, pool: PoolRuntime, tier: Tier) -> None:
        """Start one replica and probe it at once."""
        self._start(pool, tier)
        self._wake.set()

    async def _probe_starting(self, pool: PoolRuntime, now: float) -> None:
        starting = pool.in_phase("starting")
        results = await asyncio.gather(*(self._ready(m.handle.url) for m in starting))
        for managed, ready in zip(starting, results, strict=True):
            if ready:
                self._became_ready(pool, managed, now)
            elif now - managed.since > self.config.ready_timeout_s:
                log.warning("replica %s not ready after %.0f s: restarting", managed.handle.id,
                            self.config.ready_timeout_s)  # fmt: skip
                self.spawn(self.actuator.stop(managed.handle.id, drain=False))
                managed.handle.expected_exit = False  # count it as a crash: restart w/ backoff

    async def _ready(self, url: str) -> bool:
        try:
            response = await self._http.get(f"{url}/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _became_ready(self, pool: PoolRuntime, managed: Managed, now: float) -> None:
        seconds = now - managed.since
        if not self.tiers.finish(pool, "hot"):
            load = self.metrics.load_seconds.labels(pool.spec.model, managed.promoted_from, "hot")
            load.observe(seconds)
        log.info("replica %s ready (%s -> hot in %.2f s)", managed.handle.id,
                 managed.promoted_from, seconds)  # fmt: skip
        managed.phase, managed.since = "ready", now
        self._publish(pool)

    def _publish(self, pool: PoolRuntime) -> None:
        """Hand the gateway the pool's ready replicas; wake requests held for one."""
        urls = [m.handle.url for m in pool.in_phase("ready")]
        self.gateway.set_replicas(pool.name, urls)
        if urls:
            pool.ready_event.set()
        else:
            pool.ready_event.clear()

    # -- signals ----------------------------------------------------------------------------

    def _signals(self, pool: PoolRuntime, now: float) -> Signals:
        loads = [
            ReplicaLoad(r.routable, r.waiting, r.in_flight, r.kv_usage)
            for r in self.gateway.registry.replicas(pool.name)
        ]
        total = self.metrics.pool_requests(self.gateway.metrics.requests, pool.name)
        arrived = int(total - pool.arrivals_seen)
        for _ in range(arrived):
            pool.window.observe_arrival()
        self.tiers.arrivals(pool, arrived)
        pool.arrivals_seen = total
        signals = pool.window.snapshot(now, loads)
        if pool.held:  # requests the gateway holds for this pool are waiting too
            signals = replace(signals, waiting=signals.waiting + pool.held)
        return signals

    # -- acting -----------------------------------------------------------------------------

    async def _act(self, pool: PoolRuntime, decision: ScaleDecision) -> None:
        change = decision.desired - pool.active
        for _ in range(max(change, 0)):
            await self._scale_up_one(pool)
        for _ in range(max(-change, 0)):
            self._scale_down_one(pool, to_zero=decision.desired == 0)

    async def _scale_up_one(self, pool: PoolRuntime) -> None:
        sleeping = pool.in_phase("sleeping")
        if sleeping:
            self.wake_replica(sleeping[0])
        else:
            self._start(pool, "cold")

    def _scale_down_one(self, pool: PoolRuntime, to_zero: bool) -> None:
        if pool.restarts_due:
            pool.restarts_due.pop()
            return
        victim = self._victim(pool)
        if victim is None:
            return
        victim.phase, victim.since = ("sleeping" if to_zero and pool.spec.tier.keep_warm
                                      else "draining"), self.clock()  # fmt: skip
        self._publish(pool)
        gateway_replica = self.gateway.registry.get(pool.name, _gateway_id(pool, victim))
        if victim.phase == "sleeping":
            self.spawn(self.sleep_replica(victim))
        else:
            self.spawn(self._drain(victim, gateway_replica))

    def _victim(self, pool: PoolRuntime) -> Managed | None:
        """A starting replica first (it holds nothing), else the least busy ready one."""
        starting = pool.in_phase("starting")
        if starting:
            return starting[-1]
        ready = pool.in_phase("ready")
        if not ready:
            return None
        return min(ready, key=lambda m: self._in_flight(pool, m))

    def _in_flight(self, pool: PoolRuntime, managed: Managed) -> int:
        replica = self.gateway.registry.get(pool.name, _gateway_id(pool, managed))
        return 0 if replica is None else replica.in_flight + replica.waiting + replica.running

    async def _drain(self, managed: Managed, replica: Replica | None) -> None:
        """Out of the balancer already; wait for the gateway's requests on it, then stop it
        with SIGTERM so the server finishes what it still holds."""
        deadline = self.clock() + self.config.drain_grace_s
        while replica is not None and replica.in_flight > 0 and self.clock() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        log.info("draining %s", managed.handle.id)
        await self.actuator.stop(managed.handle.id, drain=True)

    # -- tiers ------------------------------------------------------------------------------

    def set_phase(self, pool: PoolRuntime, replicas: list[Managed], phase: Phase) -> None:
        """Move replicas to a phase (out of the balancer unless ready) and publish the pool."""
        for managed in replicas:
            managed.phase, managed.since = phase, self.clock()
        self._publish(pool)

    async def drain(self, pool: PoolRuntime, managed: Managed) -> None:
        """Drain and stop a replica already taken out of the balancer."""
        await self._drain(managed, self.gateway.registry.get(pool.name, _gateway_id(pool, managed)))

    async def sleep_replica(self, managed: Managed) -> None:
        """Hot -> warm: the process stays, the engine frees its weights and cache."""
        if not await self._admin(managed, "sleep"):
            log.warning("replica %s did not sleep: stopping it instead", managed.handle.id)
            await self.actuator.stop(managed.handle.id, drain=True)

    def wake_replica(self, managed: Managed) -> None:
        """Warm -> hot: /admin/wake in the background; timed until /ready answers 200."""
        managed.phase, managed.since, managed.promoted_from = "starting", self.clock(), "warm"
        self.spawn(self._wake_call(managed))

    async def _wake_call(self, managed: Managed) -> None:
        await self._admin(managed, "wake")
        self._wake.set()  # probe it now rather than at the next interval

    async def _admin(self, managed: Managed, action: str) -> bool:
        headers = {"authorization": f"Bearer {self.config.admin_key}"}
        try:
            response = await self._http.post(
                f"{managed.handle.url}/admin/{action}", headers=headers, timeout=60.0
            )
        except httpx.HTTPError as error:
            log.warning("admin %s on %s failed: %s", action, managed.handle.id, error)
            return False
        return response.status_code == 200

    # -- holding requests while a replica comes up ------------------------------------------

    async def hold(self, pool_name: str) -> bool:
        """The gateway found no routable replica: count the demand, wake the loop, and wait
        until one is ready (True) or the hold times out or is full (False: the client gets
        503 that says no healthy replica)."""
        pool = self.pools.get(pool_name)
        if pool is None or pool.held >= self.config.max_held:
            return False
        pool.held += 1
        self.tiers.request(pool)
        self._wake.set()
        try:
            async with asyncio.timeout(self.config.hold_timeout_s):
                await pool.ready_event.wait()
        except TimeoutError:
            return False
        finally:
            pool.held -= 1
        return True

    # -- lifecycle --------------------------------------------------------------------------

    def spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every replica (drained) and the background work; no child outlives this."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.actuator.close()
        await self._http.aclose()


def _gateway_id(pool: PoolRuntime, managed: Managed) -> str:
    return replica_id(pool.name, managed.handle.url)
