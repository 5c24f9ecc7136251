"""The overload gate in front of the proxy: each request is admitted now, queued (bounded,
best tier first) or refused at once with 503 and Retry-After, as admission.overload decides
from the pool's replicas; a finished request frees its slot for the best one queued.

It owns the pools' measured rates, their queues and the counters the control plane reads as
demand that was not served (refusals by reason, seconds spent queued). A pool with no routable
replica is let through: the proxy's hold for a pool at zero answers for it.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inferplane.config.schema import Overload
from inferplane.gateway.admission.overload import (
    AdmissionQueue,
    Rates,
    decide,
    slot_room,
    tier_rank,
)
from inferplane.gateway.errors import GatewayError
from inferplane.gateway.routing.registry import ReplicaRegistry
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest

Clock = Callable[[], float]
PRIORITY_HEADER = "x-inferplane-priority"  # an integer; higher goes first within a tier
QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class PoolDemand:
    """What a pool's gate saw that the replicas could not: the autoscaler's extra demand."""

    refused: int = 0
    queued_s: float = 0.0  # total seconds requests spent in the gateway queue
    queued: int = 0  # waiting now


@dataclass
class _Pool:
    queue: AdmissionQueue[asyncio.Future[None]]
    rates: Rates = field(default_factory=Rates)
    reserved: int = 0  # slots handed to woken waiters that have not reached a replica yet
    demand: PoolDemand = field(default_factory=PoolDemand)


class Gate:
    def __init__(
        self,
        config: Overload,
        registry: ReplicaRegistry,
        metrics: CollectorRegistry,
        clock: Clock,
    ) -> None:
        self.config = config
        self.registry = registry
        self.clock = clock
        self._pools: dict[str, _Pool] = {}
        self._refusals = Counter(
            "inference_gateway_refusals",
            "Requests refused before reaching a replica, by reason.",
            ["pool", "reason"],
            registry=metrics,
        )
        self._queue_time = Histogram(
            "inference_gateway_queue_seconds",
            "Seconds admitted requests waited in the gateway's queue.",
            ["pool"],
            buckets=QUEUE_BUCKETS,
            registry=metrics,
        )
        self._queued = Gauge(
            "inference_gateway_queued", "Requests waiting in the gateway's queue.", ["pool"],
            registry=metrics,
        )  # fmt: skip

    def pool(self, name: str) -> _Pool:
        found = self._pools.get(name)
        if found is None:
            found = self._pools[name] = _Pool(AdmissionQueue(self.config.queue_size))
        return found

    def demand(self, name: str) -> PoolDemand:
        return self.pool(name).demand

    async def enter(self, pool_name: str, route: RouteRequest) -> float:
        """Wait for a slot (or raise a 503 GatewayError); return when the request was let in."""
        free = self._slot_free(pool_name)
        if free is None:
            return self.clock()  # scaling from zero or all failed: the proxy's own path
        pool = self.pool(pool_name)
        if free and not pool.reserved and not len(pool.queue):
            return self.clock()  # what decide() answers then (admit), in one short pass
        rank = tier_rank(route.tier, self.config.tier_order)
        deadline = self._deadline_s(route)
        decision = decide(
            self.registry.members(pool_name),
            pool.rates,
            self.config.slots,
            route.predicted_work,
            route.est_prompt_tokens,
            deadline,
            pool.queue.ahead_of(rank) + pool.reserved,
        )
        if decision.outcome == "admit":
            return self.clock()
        if decision.outcome == "refuse":
            raise self._refuse(pool_name, pool, "pool_full", decision.retry_after_s)
        return await self._wait(pool_name, pool, route, rank, deadline)

    async def _wait(
        self, name: str, pool: _Pool, route: RouteRequest, rank: int, deadline: float
    ) -> float:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued, evicted = pool.queue.push(waiter, rank, _priority(route))
        if not queued:
            raise self._refuse(name, pool, "queue_full", 1)
        if evicted is not None and not evicted.done():
            evicted.set_exception(self._refuse(name, pool, "outranked", 1))
        self._depth(name, pool)
        began = self.clock()
        try:
            await asyncio.wait_for(waiter, deadline)
        except TimeoutError:
            pool.queue.remove(waiter)
            raise self._refuse(name, pool, "queue_timeout", 1) from None
        except BaseException:
            if not pool.queue.remove(waiter) and _woken(waiter):
                pool.reserved -= 1  # woken and then cancelled: hand the slot on
                self.wake(name)
            raise
        finally:
            waited = self.clock() - began
            pool.demand.queued_s += waited
            self._depth(name, pool)
        pool.reserved -= 1
        self._queue_time.labels(name).observe(waited)
        return self.clock()

    def leave(  # noqa: PLR0917 (one call per finished request)
        self,
        name: str,
        route: RouteRequest,
        admitted: float,
        ttft_s: float | None,
        sharing: int,
        ok: bool,
    ) -> None:
        """A request let in has finished (`sharing`: requests on its replica as it ended,
        itself included): learn from it if it succeeded, wake the next."""
        pool = self._pools.get(name)
        if pool is None:
            return
        if ok:
            total_s = self.clock() - admitted
            work, prompt = route.predicted_work, route.est_prompt_tokens
            pool.rates.observe(work, prompt, ttft_s, total_s, sharing)
        self.wake(name)

    def wake(self, name: str) -> None:
        """Hand free slots to the best queued requests."""
        pool = self._pools.get(name)
        if pool is None or not len(pool.queue):
            return
        free = self._free_slots(name) - pool.reserved
        while free > 0 and (waiter := pool.queue.pop()) is not None:
            if waiter.done():
                continue
            waiter.set_result(None)
            pool.reserved += 1
            free -= 1
        self._depth(name, pool)

    def with_room(self, snapshots: list[ReplicaSnapshot]) -> list[ReplicaSnapshot]:
        """The replicas with a free slot, for the balancer to choose among (all of them when
        none has one: a retry, or a pool the gate let through)."""
        slots = self.config.slots
        roomy = [s for s in snapshots if s.in_flight < slot_room(slots, s.weight)]
        return roomy or snapshots

    def _slot_free(self, name: str) -> bool | None:
        """Whether a routable replica of the pool has a free slot; None when none is routable."""
        slots = self.config.slots
        routable = False
        for replica in self.registry.members(name):
            if replica.routable:
                if replica.in_flight < slot_room(slots, replica.weight):
                    return True
                routable = True
        return False if routable else None

    def _free_slots(self, name: str) -> int:
        free = 0
        for replica in self.registry.members(name):
            if replica.routable:
                free += max(0, slot_room(self.config.slots, replica.weight) - replica.in_flight)
        return free

    def _depth(self, name: str, pool: _Pool) -> None:
        pool.demand.queued = len(pool.queue)
        self._queued.labels(name).set(pool.demand.queued)

    def _deadline_s(self, route: RouteRequest) -> float:
        if route.deadline_ms is None:
            return self.config.max_wait
        return min(self.config.max_wait, route.deadline_ms / 1000)

    def _refuse(self, name: str, pool: _Pool, reason: str, retry_s: int) -> GatewayError:
        pool.demand.refused += 1
        self._refusals.labels(name, reason).inc()
        return pool_full(name, reason, retry_s)


def pool_full(pool: str, reason: str, retry_s: int) -> GatewayError:
    return GatewayError(
        503,
        f"Pool {pool!r} is at capacity and cannot start this request within its deadline "
        f"({reason.replace('_', ' ')}); retry after {retry_s} s.",
        code="pool_overloaded",
        headers={"retry-after": str(retry_s)},
        kind="server_overloaded",
    )


def _woken(waiter: "asyncio.Future[None]") -> bool:
    return waiter.done() and not waiter.cancelled() and waiter.exception() is None


def _priority(route: RouteRequest) -> int:
    value = route.headers.get(PRIORITY_HEADER)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0
