"""The fleet as `inferplane status` shows it: pools, replicas (with pids), phases, tiers, queue,
requests/s, TTFT and cost per hour, as JSON served on the gateway at /admin/fleet.

Requests/s is the change of the gateway's request counter between two reads; TTFT is the mean
of the ready replicas' moving averages; cost is the pool's live processes times the GPU-hour
price of what each one holds (zero for CPU-only pools).

It reads a FleetView: the pools and what they are measured against, read-only (the Controller
is one).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from inferplane.config.schema import FleetConfig
from inferplane.control.clock import Clock
from inferplane.control.metrics import ControlMetrics
from inferplane.control.replicas import Managed, PoolRuntime
from inferplane.control.tiers import Tier
from inferplane.gateway.routing.registry import Replica, replica_id
from inferplane.gateway.state import GatewayState
from inferplane.ledger.pricing import PriceCatalog, catalog_for

FLEET_PATH = "/admin/fleet"


class TierView(Protocol):
    def tier(self, pool: PoolRuntime) -> Tier: ...


class FleetView(Protocol):
    """What the status reads of the control plane."""

    @property
    def fleet(self) -> FleetConfig: ...
    @property
    def pools(self) -> Mapping[str, PoolRuntime]: ...
    @property
    def gateway(self) -> GatewayState: ...
    @property
    def metrics(self) -> ControlMetrics: ...
    @property
    def tiers(self) -> TierView: ...
    @property
    def clock(self) -> Clock: ...


@dataclass
class FleetStatus:
    view: FleetView
    catalog: PriceCatalog | None = None
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.catalog is None:
            self.catalog = catalog_for(self.view.fleet.pricing)

    def snapshot(self) -> dict[str, Any]:
        shown = [p for p in self.view.pools.values() if p.replicas or p.pinned != 0]
        pools = [self._pool(pool) for pool in shown]  # an idle rollout pool is not shown
        return {
            "generated_at": self.view.clock(),
            "pools": pools,
            "cost_per_hour_usd": sum(p["cost_per_hour_usd"] for p in pools),
        }

    def _pool(self, pool: PoolRuntime) -> dict[str, Any]:
        decision = pool.last_decision
        rows = [self._replica(pool, m) for m in pool.replicas.values()]
        ttfts = [r["ttft_s"] for r in rows if r["phase"] == "ready" and r["ttft_s"]]
        return {
            "name": pool.name,
            "model": pool.spec.model,
            "tier": self.view.tiers.tier(pool),
            "replicas": rows,
            "ready": sum(1 for r in rows if r["phase"] == "ready"),
            "desired": pool.active if decision is None else decision.desired,
            "min": pool.spec.replicas.min,
            "max": pool.spec.replicas.max,
            "reason": "" if decision is None else decision.reason,
            "queue": pool.held + sum(r["waiting"] for r in rows),
            "held": pool.held,
            "restarts": pool.restarts,
            "requests_per_s": self._rate(pool.name),
            "ttft_s": sum(ttfts) / len(ttfts) if ttfts else None,
            "cost_per_hour_usd": self._cost(pool),
        }

    def _replica(self, pool: PoolRuntime, managed: Managed) -> dict[str, Any]:
        handle = managed.handle
        seen = self.view.gateway.registry.get(pool.name, replica_id(pool.name, handle.url))
        return {
            "id": handle.id,
            "url": handle.url,
            "pid": handle.pid,
            "phase": managed.phase,
            "gateway_state": None if seen is None else seen.state,
            "uptime_s": self.view.clock() - handle.started_at,
            "log": handle.log_path,
            "node": handle.node,  # a cluster node's id ("" for a local process)
            "unplaced": handle.unplaced,  # why no node takes it yet ("" once placed)
            "cpus": list(handle.spec.cpus),  # the cores it runs pinned to ([]: not pinned)
            **_load(seen),
        }

    def _rate(self, pool: str) -> float:
        view = self.view
        total = view.metrics.pool_requests(view.gateway.metrics.requests, pool)
        now = view.clock()
        then_at, then_total = self._last.get(pool, (now, total))
        self._last[pool] = (now, total)
        return (total - then_total) / (now - then_at) if now > then_at else 0.0

    def _cost(self, pool: PoolRuntime) -> float:
        resources = pool.spec.resources
        if not resources.uses_gpu or self.catalog is None:
            return 0.0
        gpu = resources.gpu if resources.gpu != "none" else "A100-80GB"
        try:
            price = self.catalog.hourly_usd(
                gpu, self.view.fleet.pricing.provider, pool.spec.capacity
            )
        except ValueError:  # a GPU the catalog does not know (a cluster's own type name)
            return 0.0
        return (price or 0.0) * resources.count * len(pool.replicas)


def _load(replica: Replica | None) -> dict[str, Any]:
    if replica is None:
        return {"in_flight": 0, "waiting": 0, "running": 0, "kv_usage": 0.0, "ttft_s": None}
    return {
        "in_flight": replica.in_flight,
        "waiting": replica.waiting,
        "running": replica.running,
        "kv_usage": replica.kv_usage,
        "ttft_s": replica.ewma_ttft_s or None,
    }
