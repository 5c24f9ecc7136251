"""The gateway's quality book: each answer's confidence (the mean logprob, exported negated,
and the low-confidence share its replica reported in the usage) as histograms per model and
version, and running totals per pool (confidence, negative feedback) that rollout gates read
as a canary's window.

The histograms are counted in plain lists and exposed by a collector at scrape time: a
prometheus_client Histogram takes a lock per observation, which on the request path cost more
than the rest of the quality bookkeeping together.
"""

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from inferplane.gateway.books.tap import Usage
from inferplane.telemetry import names
from inferplane.telemetry.names import MetricSpec

LABELS = ["model", "model_version"]


@dataclass(frozen=True)
class PoolQuality:
    """A pool's totals since the gateway started; the difference of two readings is a window."""

    requests: float = 0.0  # answered requests (the denominator of the feedback rate)
    scored: float = 0.0  # answers that reported a confidence
    logprob_sum: float = 0.0  # sum of their mean logprobs
    negative_feedback: float = 0.0  # poor ratings, thumbs down, regenerations, abandons


class _Counts:
    """One histogram's buckets (not cumulative), sum and count."""

    __slots__ = ("buckets", "count", "edges", "total")

    def __init__(self, edges: tuple[float, ...]) -> None:
        self.edges = edges
        self.buckets = [0] * (len(edges) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(self.edges, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0, []
        for edge, count in zip([*self.edges, float("inf")], self.buckets, strict=True):
            running += count
            out.append(("+Inf" if edge == float("inf") else repr(edge), float(running)))
        return out


class QualityBook(Collector):
    """Confidence metrics and per-pool quality totals of one gateway process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._specs = (names.MEAN_LOGPROB, names.LOW_CONFIDENCE_SHARE)
        self._series: dict[tuple[str, str], tuple[_Counts, _Counts]] = {}
        self._pools: dict[str, list[float]] = {}
        registry.register(self)

    def answered(self, model: str, version: str, pool: str, usage: Usage | None) -> None:
        """Note an answer a replica gave (its confidence, when the usage reports one)."""
        totals = self._pools.get(pool) or self._totals(pool)
        totals[0] += 1
        if usage is None or usage.mean_logprob is None:
            return
        totals[1] += 1
        totals[2] += usage.mean_logprob
        series = self._series.get((model, version)) or self._new_series(model, version)
        series[0].observe(-usage.mean_logprob)
        if usage.low_confidence_share is not None:
            series[1].observe(usage.low_confidence_share)

    def _new_series(self, model: str, version: str) -> tuple[_Counts, _Counts]:
        logprob, low = (_Counts(spec.buckets or ()) for spec in self._specs)
        series = self._series[(model, version)] = (logprob, low)
        return series

    def negative(self, pool: str, count: int = 1) -> None:
        """Negative feedback events about answers of the pool."""
        if pool:
            self._totals(pool)[3] += count

    def reading(self, pool: str) -> PoolQuality:
        return PoolQuality(*self._pools.get(pool, (0.0, 0.0, 0.0, 0.0)))

    def _totals(self, pool: str) -> list[float]:
        totals = self._pools.get(pool)
        if totals is None:
            totals = self._pools[pool] = [0.0, 0.0, 0.0, 0.0]
        return totals

    def describe(self) -> Iterator[HistogramMetricFamily]:
        for spec in self._specs:
            yield HistogramMetricFamily(spec.name, spec.help, labels=LABELS)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        for index, spec in enumerate(self._specs):
            yield self._family(spec, index)

    def _family(self, spec: MetricSpec, index: int) -> HistogramMetricFamily:
        family = HistogramMetricFamily(spec.name, spec.help, labels=LABELS)
        for (model, version), series in list(self._series.items()):
            counts = series[index]
            family.add_metric([model, version], counts.cumulative(), counts.total)
        return family
