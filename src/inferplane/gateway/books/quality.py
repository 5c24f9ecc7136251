"""The gateway's quality book: each answer's confidence (the mean logprob, exported negated,
and the low-confidence share its replica reported in the usage) as histograms per model and
version, and running totals per pool (confidence, negative feedback) that rollout gates read
as a canary's window.
"""

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from inferplane.gateway.books.tap import Usage
from inferplane.telemetry import names


@dataclass(frozen=True)
class PoolQuality:
    """A pool's totals since the gateway started; the difference of two readings is a window."""

    requests: float = 0.0  # answered requests (the denominator of the feedback rate)
    scored: float = 0.0  # answers that reported a confidence
    logprob_sum: float = 0.0  # sum of their mean logprobs
    negative_feedback: float = 0.0  # poor ratings, thumbs down, regenerations, abandons


class QualityBook:
    """Confidence metrics and per-pool quality totals of one gateway process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.mean_logprob = names.histogram(names.MEAN_LOGPROB, registry)
        self.low_share = names.histogram(names.LOW_CONFIDENCE_SHARE, registry)
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._pools: dict[str, list[float]] = {}

    def answered(self, model: str, version: str, pool: str, usage: Usage | None) -> None:
        """Note an answer a replica gave (its confidence, when the usage reports one)."""
        totals = self._totals(pool)
        totals[0] += 1
        if usage is None or usage.mean_logprob is None:
            return
        totals[1] += 1
        totals[2] += usage.mean_logprob
        children = self._children.get((model, version))
        if children is None:
            children = (
                self.mean_logprob.labels(model, version),
                self.low_share.labels(model, version),
            )
            self._children[(model, version)] = children
        children[0].observe(-usage.mean_logprob)
        if usage.low_confidence_share is not None:
            children[1].observe(usage.low_confidence_share)

    def negative(self, pool: str) -> None:
        """A negative feedback event about an answer of the pool."""
        if pool:
            self._totals(pool)[3] += 1

    def reading(self, pool: str) -> PoolQuality:
        return PoolQuality(*self._pools.get(pool, (0.0, 0.0, 0.0, 0.0)))

    def _totals(self, pool: str) -> list[float]:
        totals = self._pools.get(pool)
        if totals is None:
            totals = self._pools[pool] = [0.0, 0.0, 0.0, 0.0]
        return totals
