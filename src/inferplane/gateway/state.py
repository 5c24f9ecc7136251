"""Everything one gateway process holds: the fleet, the replica registry, balancing policies,
health, the retry budget, the upstream client and metrics; started and stopped with the app.

`set_replicas(pool, urls)` is the control plane's hook: it hands over the URLs of the replicas
it runs; pools with `endpoints:` in the fleet file are filled from there at construction.
It also holds the process's tracing (off unless an OTLP endpoint is set) and its books (the
accountant: usage records, costs, budgets), swept in the background.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from inferplane.config.schema import FleetConfig
from inferplane.gateway.access import Access
from inferplane.gateway.books.accounting import SWEEP_S, Accountant
from inferplane.gateway.books.drift import DriftSampler
from inferplane.gateway.books.feedback import FeedbackBook
from inferplane.gateway.books.metrics import GatewayMetrics
from inferplane.gateway.books.quality import QualityBook
from inferplane.gateway.embedder import fleet_embedder
from inferplane.gateway.gate import Gate
from inferplane.gateway.proxy import Proxy
from inferplane.gateway.routing.balancer import Policy, policy_from_config
from inferplane.gateway.routing.health import HealthChecker, OutlierDetector
from inferplane.gateway.routing.registry import Replica, ReplicaRegistry
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.transport.retry import RetryBudget
from inferplane.gateway.transport.upstream import Upstream
from inferplane.ledger.regeneration_counts import RegenerationEcho
from inferplane.ledger.store import UsageStore
from inferplane.telemetry.sla import PoolSlaCollector, pool_slas
from inferplane.telemetry.tracing import Tracing, setup_tracing
from inferplane.telemetry.worker_metrics import SNAPSHOT_S, SharedMetrics

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class GatewayState:
    def __init__(
        self,
        fleet: FleetConfig,
        settings: GatewaySettings | None = None,
        replicas: Mapping[str, Iterable[str]] | None = None,
        clock: Clock = time.monotonic,
        *,
        access: Access | None = None,
        accountant: Accountant | None = None,
        store: UsageStore | None = None,
        tracing: Tracing | None = None,
        metrics: GatewayMetrics | None = None,
        feedback: FeedbackBook | None = None,
        regenerations: RegenerationEcho | None = None,
        shared_metrics: SharedMetrics | None = None,
    ) -> None:
        self.fleet = fleet
        self.access = access or Access.from_fleet(fleet, Path.cwd(), clock)
        self.settings = settings or GatewaySettings()
        self.clock = clock
        self.metrics = metrics or GatewayMetrics()
        self.metrics.registry.register(PoolSlaCollector(pool_slas(fleet)))
        self.tracing = tracing or setup_tracing("inferplane-gateway")
        self.accountant = accountant or Accountant(
            fleet, (), self.metrics.cost, None, clock, time.time
        )
        self.quality = QualityBook(self.metrics.registry)
        self.feedback = feedback or FeedbackBook(self.metrics.registry, None, time.time)
        self.feedback.on_negative = self.quality.negative
        self.regenerations = regenerations  # what the ledger writer found, counted here
        self.shared_metrics = shared_metrics  # with several workers: /metrics answers for all
        self._store = store  # the ledger's store, read once at start for budgets' spend
        self.registry = ReplicaRegistry({name: pool.model for name, pool in fleet.pools.items()})
        embedder = fleet_embedder(fleet, self.registry)
        self.drift = DriftSampler(self.metrics.registry, embedder)  # scored in the background
        self.policies: dict[str, Policy] = {
            name: policy_from_config(fleet.balancing) for name in fleet.pools
        }
        self.detector = OutlierDetector(self.settings.health, clock, self._on_eject)
        self.upstream = Upstream(self.settings.upstream)
        self.health = HealthChecker(self.registry, self.detector, self.upstream)
        self.proxy = Proxy(
            registry=self.registry,
            policies=self.policies,
            detector=self.detector,
            budget=RetryBudget(self.settings.retry, clock),
            upstream=self.upstream,
            metrics=self.metrics,
            config=self.settings.proxy,
            clock=clock,
            gate=Gate(fleet.overload, self.registry, self.metrics.registry, clock),
        )
        self.models = sorted(self.access.models)
        self.wants_prefix = fleet.balancing.policy == "prefix_affinity"
        self._health_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self._publish_task: asyncio.Task[None] | None = None
        for name, pool in fleet.pools.items():
            if pool.endpoints:
                self.set_replicas(name, pool.endpoints)
        for name, urls in (replicas or {}).items():
            self.set_replicas(name, urls)

    def set_replicas(self, pool: str, urls: Iterable[str]) -> None:
        """Make `pool`'s replica set exactly `urls` (the control plane calls this)."""
        self.registry.set_replicas(pool, urls)
        self._publish_ready()

    def _on_eject(self, replica: Replica) -> None:
        self.metrics.ejections.labels(replica.pool).inc()

    def _publish_ready(self) -> None:
        for pool in self.registry.pools():
            self.metrics.replicas_ready.labels(pool).set(self.registry.ready_count(pool))

    def any_ready(self) -> bool:
        return any(r.routable for r in self.registry)

    async def start(self) -> None:
        """Open the upstream pools, check every replica once (bounded), then keep checking."""
        await self.upstream.start()
        await asyncio.to_thread(self.accountant.start, self._store)
        self.feedback.open()
        await self.check_health()
        self._health_task = asyncio.create_task(self._health_loop())
        self._sweep_task = asyncio.create_task(self._sweep_loop())
        if self.shared_metrics is not None:
            self._publish_task = asyncio.create_task(self._publish_loop(self.shared_metrics))
        self.drift.start()

    async def check_health(self) -> None:
        await self.health.check_all()
        self._publish_ready()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health.interval_s)
            await self.check_health()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                self.accountant.sweep()
                self.count_regenerations()
            except Exception:  # one bad sweep must not end accounting until a restart
                log.exception("the accounting sweep failed; the next one runs in %gs", SWEEP_S)

    async def render_metrics(self) -> bytes:
        """The /metrics body: this process's, or every worker's merged (tens of ms of parsing,
        in a thread, so that the event loop goes on serving meanwhile)."""
        if self.shared_metrics is None:
            return self.metrics.render()
        return await asyncio.to_thread(self.shared_metrics.render)

    @staticmethod
    async def _publish_loop(shared: SharedMetrics) -> None:
        while True:
            shared.publish_if_scraped()
            await asyncio.sleep(SNAPSHOT_S)

    def count_regenerations(self) -> None:
        """Count the regenerations the ledger writer found since the last sweep."""
        if self.regenerations is None:
            return
        for (model, version, pool), count in self.regenerations.news():
            self.feedback.regenerated(model, version, pool, count)

    async def stop(self) -> None:
        for task in (self._health_task, self._sweep_task, self._publish_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.drift.stop()
        await self.upstream.close()
        await asyncio.to_thread(self.accountant.close)
        self.feedback.close()
        self.tracing.shutdown()
