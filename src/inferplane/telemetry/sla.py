"""Each pool's latency SLA as a metric, so the alert rules can compare p99 latency with it.

A pool's SLA is the tightest `max_latency_ms_below` among the routes that send to it (a
route that promises 200 ms and lands on the pool makes the pool a 200 ms pool). Pools no
such route reaches publish nothing, and the SLA alert never fires for them.
"""

from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inferplane.config.schema import FleetConfig
from inferplane.telemetry import names


def pool_slas(fleet: FleetConfig) -> dict[str, float]:
    """Pool name -> SLA in seconds, for pools a latency-matching route targets."""
    slas: dict[str, float] = {}
    for rule in fleet.routes:
        if rule.match is None or rule.match.max_latency_ms_below is None or rule.pool is None:
            continue
        seconds = rule.match.max_latency_ms_below / 1000.0
        slas[rule.pool] = min(seconds, slas.get(rule.pool, seconds))
    return slas


class PoolSlaCollector(Collector):
    """inference_pool_sla_seconds{pool}: constant per fleet file, published at each scrape."""

    def __init__(self, slas: Mapping[str, float]) -> None:
        self.slas = dict(slas)

    def collect(self) -> Iterator[Metric]:
        spec = names.POOL_SLA_SECONDS
        family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
        for pool, seconds in sorted(self.slas.items()):
            family.add_metric([pool], seconds)
        yield family
