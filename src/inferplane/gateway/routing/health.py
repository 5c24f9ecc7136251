"""Replica health: passive outlier ejection from live traffic, active readiness checks, and
readmission.

Passive: `eject_after` consecutive failures (connection errors, timeouts, 5xx) eject a replica
for `base_ejection_s` times the number of times it was ejected before (capped), so a flapping
replica stays out longer. Active: every `interval_s` each replica's /ready (or /health where a
server has no /ready) is fetched; 200 readmits an ejected replica once its ejection time is
over, 503 marks it draining, and `checks_to_fail` consecutive other answers (or none) mark it
failed. The same round scrapes /metrics. When no replica of a pool is routable, the proxy
still tries the failed ones (panic mode) rather than answer 503 for certain.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from inferplane.gateway.routing.registry import Replica, ReplicaRegistry
from inferplane.gateway.routing.scrape import ScrapedLoad, parse_metrics
from inferplane.gateway.transport.upstream import Upstream

log = logging.getLogger(__name__)
Clock = Callable[[], float]
OnEject = Callable[[Replica], None]


@dataclass(frozen=True)
class HealthConfig:
    interval_s: float = 1.0
    timeout_s: float = 1.0
    eject_after: int = 3
    base_ejection_s: float = 2.0
    max_ejection_s: float = 30.0
    checks_to_fail: int = 2  # one slow /ready under load is not a dead replica

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise ValueError("health interval and timeout must be > 0 seconds, e.g. 1.0")
        if self.eject_after < 1:
            raise ValueError("eject_after must be >= 1 consecutive failures, e.g. 3")


class OutlierDetector:
    """The health state machine of replicas; pure (time comes from the clock)."""

    def __init__(self, config: HealthConfig, clock: Clock, on_eject: OnEject | None = None):
        self.config = config
        self.clock = clock
        self.on_eject = on_eject

    def success(self, replica: Replica) -> None:
        replica.consecutive_failures = 0

    def failure(self, replica: Replica) -> None:
        replica.consecutive_failures += 1
        if replica.state == "ready" and replica.consecutive_failures >= self.config.eject_after:
            self.eject(replica)

    def eject(self, replica: Replica) -> None:
        replica.ejections += 1
        seconds = min(self.config.base_ejection_s * replica.ejections, self.config.max_ejection_s)
        replica.state = "failed"
        replica.ejected_until = self.clock() + seconds
        log.warning(
            "ejected %s for %.1fs after %d failures",
            replica.id,
            seconds,
            replica.consecutive_failures,
        )
        if self.on_eject is not None:
            self.on_eject(replica)

    def checked(self, replica: Replica, status: int | None) -> None:
        """Apply one active check's result: an HTTP status, or None when unreachable."""
        if status == 200:
            if replica.state != "ready" and self.clock() >= replica.ejected_until:
                if replica.state == "failed":
                    log.info("readmitted %s", replica.id)
                replica.state = "ready"
                replica.consecutive_failures = 0
        elif status == 503:
            replica.state = "draining"
        else:
            replica.failed_checks += 1
            if replica.state != "failed" and replica.failed_checks >= self.config.checks_to_fail:
                replica.state = "failed"
                replica.ejected_until = self.clock()
                log.warning("replica %s failed its readiness check (%s)", replica.id, status)
            return
        replica.failed_checks = 0


class HealthChecker:
    """The active side: one round of checks and scrapes over every replica, on a timer."""

    def __init__(
        self, registry: ReplicaRegistry, detector: OutlierDetector, upstream: Upstream
    ) -> None:
        self.registry = registry
        self.detector = detector
        self.upstream = upstream

    async def check_all(self) -> None:
        replicas = list(self.registry)
        if replicas:
            await asyncio.gather(*(self.check(r) for r in replicas))

    async def check(self, replica: Replica) -> None:
        timeout = self.detector.config.timeout_s
        status, load = await asyncio.gather(
            self.upstream.probe(replica.url, timeout), self._scrape(replica, timeout)
        )
        self.detector.checked(replica, status)
        if load is not None:
            apply_load(replica, load)

    async def _scrape(self, replica: Replica, timeout: float) -> ScrapedLoad | None:
        with contextlib.suppress(Exception):  # a replica without /metrics is still healthy
            text = await self.upstream.get_text(f"{replica.url}/metrics", timeout)
            return None if text is None else parse_metrics(text)
        return None


def apply_load(replica: Replica, load: ScrapedLoad) -> None:
    if load.waiting is not None:
        replica.waiting = load.waiting
    if load.running is not None:
        replica.running = load.running
    if load.kv_usage is not None:
        replica.kv_usage = load.kv_usage
