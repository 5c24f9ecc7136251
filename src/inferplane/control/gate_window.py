"""A pool's requests, errors and TTFT p95 over a rollout step, from the gateway's own accounting.

The gateway counts every request it finishes (inference_request{model,pool,status}) and times
the first streamed byte (inference_time_to_first_token_seconds{model,pool}). A `PoolCounts` is
a reading of both for one pool; the difference of two readings is what happened between them,
which `window` turns into rollout.WindowMetrics. An error is a 5xx the client got (a client
hang-up, 499, is not the replica's fault). TTFT p95 is the upper edge of the histogram bucket
holding the 95th percentile, so it is conservative by at most one bucket. The gateway does not
time tokens after the first, so TPOT p95 stays None and its gate does not apply.
"""

from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram

from inferplane.control.rollout import WindowMetrics
from inferplane.gateway.books.quality import PoolQuality

P95 = 0.95


@dataclass(frozen=True)
class PoolCounts:
    requests: float = 0.0
    errors: float = 0.0
    ttft_buckets: tuple[tuple[float, float], ...] = ()  # (upper edge, cumulative count)
    quality: PoolQuality = field(
        default_factory=PoolQuality
    )  # confidence and feedback totals (quality gates)
    drift_score: float | None = None  # the pool's model's drift score now (not a total)


def read(
    requests: Counter,
    ttft: Histogram,
    pool: str,
    quality: PoolQuality | None = None,
    drift_score: float | None = None,
) -> PoolCounts:
    """The pool's totals so far, over every model the pool answered for."""
    total = errors = 0.0
    for metric in requests.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total") or sample.labels.get("pool") != pool:
                continue
            total += sample.value
            if sample.labels.get("status", "").startswith("5"):
                errors += sample.value
    return PoolCounts(total, errors, _buckets(ttft, pool), quality or PoolQuality(), drift_score)


def _buckets(ttft: Histogram, pool: str) -> tuple[tuple[float, float], ...]:
    cumulative: dict[float, float] = {}
    for metric in ttft.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("pool") == pool:
                edge = float(sample.labels["le"])
                cumulative[edge] = cumulative.get(edge, 0.0) + sample.value
    return tuple(sorted(cumulative.items()))


def window(now: PoolCounts, then: PoolCounts) -> WindowMetrics:
    """What the pool did between two readings."""
    before = dict(then.ttft_buckets)
    buckets = [(edge, count - before.get(edge, 0.0)) for edge, count in now.ttft_buckets]
    return WindowMetrics(
        requests=int(now.requests - then.requests),
        errors=int(now.errors - then.errors),
        ttft_p95_s=_quantile(buckets, P95),
        mean_logprob=_ratio(now.quality.logprob_sum - then.quality.logprob_sum,
                            now.quality.scored - then.quality.scored),
        negative_feedback_rate=_ratio(
            now.quality.negative_feedback - then.quality.negative_feedback,
            now.quality.requests - then.quality.requests,
        ),
        drift_score=now.drift_score,
    )  # fmt: skip


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    finite = [edge for edge, _ in buckets if edge != float("inf")]
    for edge, count in buckets:
        if count >= rank:
            return edge if edge != float("inf") else (finite[-1] if finite else None)
    return None
