"""The replicas of every managed pool through their phases: start, probe /ready, publish the
ready ones to the gateway (releasing the requests held for one), reap what exited and restart
crashes with backoff, take replicas out (drain then stop, or sleep), wake sleeping ones; and
the background work all this spawns, cancelled on close.

It carries out and decides nothing: the controller chooses how big a pool should be and which
replicas come and go (control/resize), the tier runtime moves whole pools between hot, warm
and cold, the rollout runner pins canary pools; all three act through this.

A replica brought to hot is timed into inference_model_load_seconds{model,from,to}, from its
start (or wake) to its first 200 on /ready, unless `on_hot` (the tier runtime) timed it as
the pool's own transition.

With a core book (CPU replicas on this host), each CPU replica starts pinned to the cores the
book grants it, with as many threads; it gives them back when it exits or falls asleep, and
asks again when it wakes (moved onto other cores if its own were given away meanwhile).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import httpx

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import (
    Actuator,
    Backoff,
    PinsCores,
    ReplicaHandle,
)
from inferplane.control.autoscaler import Autoscaler, ReplicaCap
from inferplane.control.clock import Clock
from inferplane.control.core_book import CoreBook, CoreGrant
from inferplane.control.holding import HoldQueue
from inferplane.control.metrics import ControlMetrics
from inferplane.control.replicas import Managed, Phase, PoolRuntime, Tier, replica_spec
from inferplane.control.resize import Candidate, ScaleDown, ScaleUp
from inferplane.control.settings import ControllerConfig
from inferplane.control.signals import SignalWindow
from inferplane.gateway.routing.registry import replica_id
from inferplane.gateway.state import GatewayState

log = logging.getLogger(__name__)
DRAIN_POLL_S = 0.05


def _untimed(pool: PoolRuntime) -> bool:
    return False


def _unwatched(pool: PoolRuntime) -> None:
    return None


class Lifecycle:
    """Runs the managed pools' replicas on an actuator and publishes them to a gateway."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        fleet: FleetConfig,
        gateway: GatewayState,
        actuator: Actuator,
        config: ControllerConfig,
        clock: Clock,
        metrics: ControlMetrics,
        wake: Callable[[], None],
        *,
        cores: CoreBook | None = None,
    ) -> None:
        self.fleet = fleet
        self.gateway = gateway
        self.actuator = actuator
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.wake = wake  # asks the control loop to tick now
        self.cores = cores  # None: replicas are not pinned (a cluster backend places them)
        self.on_hot: Callable[[PoolRuntime], bool] = _untimed  # True: the tiers timed it
        self.on_publish: Callable[[PoolRuntime], None] = _unwatched  # e.g. the file_sd writer
        self.pools = {
            name: self._runtime(name) for name, spec in fleet.pools.items() if not spec.is_external
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(timeout=config.probe_timeout_s)

    def _runtime(self, name: str) -> PoolRuntime:
        spec, config = self.fleet.pools[name], self.config
        rspec = replica_spec(name, spec, self.fleet.models[spec.model], config.kv_cache_memory)
        scaler = Autoscaler(spec.autoscale, spec.replicas, self.clock, initial=0)
        holds: HoldQueue[asyncio.Future[bool]] = HoldQueue(config.max_held, config.hold_timeout_s)
        return PoolRuntime(name, spec, rspec, scaler, SignalWindow(), holds,
                           Backoff(config.backoff))  # fmt: skip

    # -- starting and readiness -------------------------------------------------------------

    def start(self, pool: PoolRuntime, tier: Tier = "cold") -> None:
        grant = self._grant(pool)
        spec = pool.replica_spec
        if grant is not None:
            spec = replace(spec, cpus=grant.cpus, threads=grant.threads)
        handle = self.actuator.start(spec)
        if grant is not None and self.cores is not None:
            self.cores.hold(handle.id, grant)
        pool.replicas[handle.id] = Managed(handle, "starting", self.clock(), tier, cores=grant)

    def _grant(self, pool: PoolRuntime, prefer: tuple[int, ...] = ()) -> CoreGrant | None:
        grant = None if self.cores is None else self.cores.offer(pool.name, prefer)
        if grant is not None and grant.shared:
            log.warning("pool %s: no %d free cores, a replica shares cores (%s)", pool.name,
                        grant.threads, grant.describe())  # fmt: skip
        return grant

    def core_cap(self, pool: PoolRuntime) -> ReplicaCap | None:
        """How far the pool may grow on the host's free cores (None: not pinned)."""
        if self.cores is None:
            return None
        return self.cores.cap(pool.name, pool.active, len(pool.restarts_due))

    def start_replica(self, pool: PoolRuntime, tier: Tier) -> None:
        """Start one replica and probe it at once."""
        self.start(pool, tier)
        self.wake()

    async def probe(self, pool: PoolRuntime, now: float) -> None:
        """Admit the starting replicas that answer /ready; restart those past the timeout."""
        starting = [m for m in pool.in_phase("starting") if not _calling(m)]
        results = await asyncio.gather(*(self._ready(m.handle.url) for m in starting))
        for managed, ready in zip(starting, results, strict=True):
            if ready:
                self._became_ready(pool, managed, now)
            elif now - managed.since > self.config.ready_timeout_s:
                log.warning("replica %s not ready after %.0f s: restarting", managed.handle.id,
                            self.config.ready_timeout_s)  # fmt: skip
                self.spawn(self.actuator.stop(managed.handle.id, drain=False))

    async def _ready(self, url: str) -> bool:
        try:
            response = await self._http.get(f"{url}/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _became_ready(self, pool: PoolRuntime, managed: Managed, now: float) -> None:
        seconds = now - managed.since
        if not self.on_hot(pool):
            load = self.metrics.load_seconds.labels(pool.spec.model, managed.promoted_from, "hot")
            load.observe(seconds)
        log.info("replica %s ready (%s -> hot in %.2f s)", managed.handle.id,
                 managed.promoted_from, seconds)  # fmt: skip
        managed.phase, managed.since = "ready", now
        self.publish(pool)

    def publish(self, pool: PoolRuntime) -> None:
        """Hand the gateway the pool's ready replicas; release the requests held for one."""
        ready = pool.in_phase("ready")
        self.on_publish(pool)
        self.gateway.set_replicas(pool.name, [m.handle.url for m in ready])
        for managed in ready:
            managed.record = self.gateway.registry.get(pool.name, _gateway_id(pool, managed))
        if ready:
            self.release(pool)

    def release(self, pool: PoolRuntime) -> None:
        """Answer every request held for the pool: go ahead, a replica is ready."""
        for waiter in pool.holds.release():
            if not waiter.done():
                waiter.set_result(True)

    # -- crashes and restarts ---------------------------------------------------------------

    def reap(self) -> None:
        """Forget replicas whose process exited; schedule a restart for those that crashed."""
        for handle in self.actuator.reap():
            if self.cores is not None:
                self.cores.release(handle.id)
            pool = self.pools.get(handle.spec.pool)
            managed = None if pool is None else pool.replicas.pop(handle.id, None)
            if pool is None or managed is None:
                continue
            self.publish(pool)
            # Still starting: it crashed, or was killed for not being ready in time (the
            # actuator marks that exit expected); either way it is restarted with backoff.
            if not handle.expected_exit or managed.phase == "starting":
                self._schedule_restart(pool, handle)

    def _schedule_restart(self, pool: PoolRuntime, handle: ReplicaHandle) -> None:
        delay = pool.backoff.next_delay(self.clock() - handle.started_at)
        log.warning("replica %s exited with %s; restart in %.1f s (log: %s)", handle.id,
                    handle.returncode, delay, handle.log_path)  # fmt: skip
        pool.restarts_due.append(self.clock() + delay)
        self.metrics.restarts.labels(pool.name).inc()
        pool.restarts += 1

    def restart_due(self, pool: PoolRuntime, now: float) -> None:
        due = [at for at in pool.restarts_due if at <= now]
        pool.restarts_due = [at for at in pool.restarts_due if at > now]
        for _ in due:
            self.start(pool, "cold")

    # -- resizing: the controller's choice, carried out -------------------------------------

    def candidates(self, pool: PoolRuntime) -> list[Candidate]:
        """The pool's replicas as a resize sees them, busy as the gateway counts them."""
        return [Candidate(rid, m.phase, self._busy(pool, m)) for rid, m in pool.replicas.items()]

    def _busy(self, pool: PoolRuntime, managed: Managed) -> int:
        replica = self.gateway.registry.get(pool.name, _gateway_id(pool, managed))
        return 0 if replica is None else replica.in_flight + replica.waiting + replica.running

    def grow(self, pool: PoolRuntime, plan: ScaleUp) -> None:
        for rid in plan.wake:
            self.wake_replica(pool.replicas[rid])
        for _ in range(plan.start):
            self.start(pool, "cold")

    def shrink(self, pool: PoolRuntime, plan: ScaleDown) -> None:
        for _ in range(plan.cancel_restarts):
            pool.restarts_due.pop()
        draining = [pool.replicas[rid] for rid in plan.drain]
        self.set_phase(pool, draining, "draining")
        for managed in draining:
            self.spawn(self.drain(managed))
        if plan.sleep is not None:
            self.put_to_sleep(pool, pool.replicas[plan.sleep])

    # -- out of the balancer, asleep, awake -------------------------------------------------

    def set_phase(self, pool: PoolRuntime, replicas: list[Managed], phase: Phase) -> None:
        """Move replicas to a phase (out of the balancer unless ready) and publish the pool."""
        for managed in replicas:
            managed.phase, managed.since = phase, self.clock()
        self.publish(pool)

    async def drain(self, managed: Managed) -> None:
        """Out of the balancer already: wait (up to drain_grace_s) for the gateway's requests
        on it, then stop it with SIGTERM so the server finishes what it still holds."""
        deadline = self.clock() + self.config.drain_grace_s
        record = managed.record
        while record is not None and record.in_flight > 0 and self.clock() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        log.info("draining %s", managed.handle.id)
        await self.actuator.stop(managed.handle.id, drain=True)

    def put_to_sleep(self, pool: PoolRuntime, managed: Managed) -> "asyncio.Task[None]":
        """Hot -> warm from now on (out of the balancer); the sleep call runs in the background,
        kept as the replica's admin call, which a later wake waits for."""
        self.set_phase(pool, [managed], "sleeping")
        managed.admin_call = self.spawn(self.sleep_replica(managed))
        return managed.admin_call

    async def sleep_replica(self, managed: Managed) -> None:
        """Hot -> warm: the process stays, the engine frees its weights and cache."""
        if not await self._admin(managed, "sleep"):
            log.warning("replica %s did not sleep: stopping it instead", managed.handle.id)
            await self.actuator.stop(managed.handle.id, drain=True)
        elif self.cores is not None and managed.phase == "sleeping":
            self.cores.release(managed.handle.id)  # its threads idle: the cores may go

    def wake_replica(self, managed: Managed) -> None:
        """Warm -> hot: /admin/wake in the background; timed until /ready answers 200. A
        pinned replica takes cores again first (its own if they are still free)."""
        managed.phase, managed.since, managed.promoted_from = "starting", self.clock(), "warm"
        self._repin(managed)
        managed.admin_call = self.spawn(self._wake_call(managed, managed.admin_call))

    def _repin(self, managed: Managed) -> None:
        pool, old = self.pools.get(managed.handle.spec.pool), managed.cores
        if self.cores is None or pool is None or old is None:
            return
        if self.cores.holding(managed.handle.id) is None:
            grant = self._grant(pool, prefer=old.cpus) or old
            self.cores.hold(managed.handle.id, grant)
            if grant.cpus != old.cpus and isinstance(self.actuator, PinsCores):
                self.actuator.pin(managed.handle.id, grant.cpus)
            managed.cores = grant

    async def _wake_call(self, managed: Managed, sleep_call: "asyncio.Task[None] | None") -> None:
        # The phase says "sleeping" from the decision on; a wake sent while the sleep call is
        # still on its way could land first and leave the replica asleep.
        if sleep_call is not None and not sleep_call.done():
            await asyncio.wait([sleep_call])
        await self._admin(managed, "wake")
        self.wake()  # probe it now rather than at the next interval

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

    # -- background work --------------------------------------------------------------------

    def spawn(self, work: Awaitable[None]) -> "asyncio.Task[None]":
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop every replica (drained) and the background work; no child outlives this."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.actuator.close()
        await self._http.aclose()


def _gateway_id(pool: PoolRuntime, managed: Managed) -> str:
    return replica_id(pool.name, managed.handle.url)


def _calling(managed: Managed) -> bool:
    """Whether an admin call to the replica (sleep or wake) has not returned yet."""
    return managed.admin_call is not None and not managed.admin_call.done()
