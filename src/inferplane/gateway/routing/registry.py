"""The replica set of every pool, as the gateway knows it: addresses, health state, the last
scrape, and the gateway's own in-flight counts. Snapshots for the balancer are built from it.

Pools with `endpoints:` in the fleet file are filled at start; managed pools are filled by the
control plane (or `--replica POOL=URL`) through `set_replicas`. A replica keeps its record (and
its health history) while its URL stays in the set.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from inferplane.gateway.types import ReplicaSnapshot, ReplicaState

EWMA_ALPHA = 0.2  # weight of the newest TTFT sample; ~5 samples of memory


@dataclass
class Replica:
    """One replica's mutable record. Only the gateway's event loop touches it."""

    id: str
    pool: str
    model: str
    url: str
    state: ReplicaState = "ready"
    in_flight: int = 0
    outstanding_work: int = 0  # prompt + max tokens of the requests in flight to it
    waiting: int = 0
    running: int = 0
    kv_usage: float = 0.0
    ewma_ttft_s: float = 0.0
    weight: float = 1.0
    consecutive_failures: int = 0
    failed_checks: int = 0
    ejections: int = 0
    ejected_until: float = 0.0

    @property
    def routable(self) -> bool:
        return self.state == "ready"

    def snapshot(self, state: ReplicaState | None = None) -> ReplicaSnapshot:
        return ReplicaSnapshot(
            id=self.id,
            pool=self.pool,
            model=self.model,
            url=self.url,
            state=state or self.state,
            in_flight=self.in_flight,
            outstanding_work=self.outstanding_work,
            waiting=self.waiting,
            running=self.running,
            kv_usage=self.kv_usage,
            ewma_ttft_s=self.ewma_ttft_s,
            weight=self.weight,
        )

    def observe_ttft(self, seconds: float) -> None:
        if self.ewma_ttft_s == 0.0:
            self.ewma_ttft_s = seconds
        else:
            self.ewma_ttft_s += EWMA_ALPHA * (seconds - self.ewma_ttft_s)


def replica_id(pool: str, url: str) -> str:
    """A stable, readable id: the pool and the host:port (what x-inferplane-replica shows)."""
    return f"{pool}/{url.split('://', 1)[-1].rstrip('/')}"


class ReplicaRegistry:
    """Pool name -> its replicas, plus the model each pool serves."""

    def __init__(self, pool_models: dict[str, str]) -> None:
        self.pool_models = dict(pool_models)
        self._pools: dict[str, dict[str, Replica]] = {pool: {} for pool in pool_models}

    def set_replicas(self, pool: str, urls: Iterable[str]) -> None:
        """Make the pool's set exactly `urls`; known replicas keep their state and history."""
        if pool not in self._pools:
            known = ", ".join(sorted(self._pools)) or "none"
            raise ValueError(f"unknown pool {pool!r}: the fleet defines {known}")
        current = self._pools[pool]
        fresh: dict[str, Replica] = {}
        for raw in urls:
            url = raw.rstrip("/")
            rid = replica_id(pool, url)
            fresh[rid] = current.get(rid) or Replica(rid, pool, self.pool_models[pool], url)
        self._pools[pool] = fresh

    def replicas(self, pool: str) -> list[Replica]:
        return list(self._pools.get(pool, {}).values())

    def members(self, pool: str) -> Iterable[Replica]:
        """The pool's replicas, live and uncopied (a read on the hot path)."""
        replicas = self._pools.get(pool)
        return () if replicas is None else replicas.values()

    def get(self, pool: str, rid: str) -> Replica | None:
        return self._pools.get(pool, {}).get(rid)

    def __iter__(self) -> Iterator[Replica]:
        for replicas in self._pools.values():
            yield from replicas.values()

    def pools(self) -> list[str]:
        return list(self._pools)

    def snapshots(self, pool: str, exclude: frozenset[str] = frozenset()) -> list[ReplicaSnapshot]:
        """Routable replicas of the pool, minus those already tried for this request."""
        return [
            r.snapshot()
            for r in self._pools.get(pool, {}).values()
            if r.state == "ready" and r.id not in exclude
        ]

    def panic_snapshots(self, pool: str, exclude: frozenset[str]) -> list[ReplicaSnapshot]:
        """When no replica of a pool is routable, its failed ones, shown as ready: better a
        try on a replica that may have recovered than a certain 503 (Envoy's panic mode)."""
        return [
            r.snapshot("ready")
            for r in self._pools.get(pool, {}).values()
            if r.state == "failed" and r.id not in exclude
        ]

    def ready_count(self, pool: str) -> int:
        return sum(1 for r in self._pools.get(pool, {}).values() if r.state == "ready")
