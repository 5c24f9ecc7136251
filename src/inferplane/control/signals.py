"""Pool signals for the autoscaler, and the window that builds them from replica samples.

The controller scrapes each replica (waiting, in flight, KV usage, GPU utilisation) and hears
of each finished request (its TTFT). A SignalWindow keeps the TTFT samples of the last
`horizon_s` seconds for a p95 and counts requests between snapshots; `snapshot` sums the
replica loads into one `Signals` for the pool.
"""

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

GPU_IDLE_PERCENT = 5.0


@dataclass(frozen=True)
class Signals:
    """A pool's load at one instant, summed (or averaged) over its replicas.

    waiting / in_flight: requests queued / being served, summed over the pool.
    replicas_ready: replicas that can serve now. ttft_p95_s: over the signal window, None
    without samples. kv_usage: mean KV cache use of ready replicas, 0..1.
    requests_since_last: requests that arrived since the previous snapshot.
    gpu_util: the busiest replica's GPU utilisation in percent, None without a GPU.
    """

    waiting: int = 0
    in_flight: int = 0
    replicas_ready: int = 0
    ttft_p95_s: float | None = None
    kv_usage: float = 0.0
    requests_since_last: int = 0
    gpu_util: float | None = None

    @property
    def has_demand(self) -> bool:
        return self.waiting > 0 or self.in_flight > 0 or self.requests_since_last > 0

    @property
    def is_idle(self) -> bool:
        """No requests at all, and the GPU (where there is one) under 5% busy."""
        gpu_quiet = self.gpu_util is None or self.gpu_util < GPU_IDLE_PERCENT
        return not self.has_demand and gpu_quiet


@dataclass(frozen=True)
class ReplicaLoad:
    """One replica's scraped load."""

    ready: bool = True
    waiting: int = 0
    in_flight: int = 0
    kv_usage: float = 0.0
    gpu_util: float | None = None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class SignalWindow:
    """TTFT samples over a sliding horizon and a request counter, turned into Signals."""

    def __init__(self, horizon_s: float = 60.0) -> None:
        if horizon_s <= 0:
            raise ValueError(f"signal window horizon must be > 0 seconds (got {horizon_s})")
        self._horizon = horizon_s
        self._ttft: deque[tuple[float, float]] = deque()
        self._arrivals = 0

    def observe_arrival(self) -> None:
        self._arrivals += 1

    def observe_ttft(self, now: float, ttft_s: float) -> None:
        self._ttft.append((now, ttft_s))

    def ttft_p95(self, now: float) -> float | None:
        self._expire(now)
        if not self._ttft:
            return None
        return percentile([value for _, value in self._ttft], 0.95)

    def snapshot(self, now: float, replicas: Sequence[ReplicaLoad]) -> Signals:
        """The pool's Signals now; resets the arrival counter."""
        ready = [replica for replica in replicas if replica.ready]
        utils = [r.gpu_util for r in replicas if r.gpu_util is not None]
        arrivals, self._arrivals = self._arrivals, 0
        return Signals(
            waiting=sum(replica.waiting for replica in replicas),
            in_flight=sum(replica.in_flight for replica in replicas),
            replicas_ready=len(ready),
            ttft_p95_s=self.ttft_p95(now),
            kv_usage=sum(r.kv_usage for r in ready) / len(ready) if ready else 0.0,
            requests_since_last=arrivals,
            gpu_util=max(utils) if utils else None,
        )

    def _expire(self, now: float) -> None:
        while self._ttft and self._ttft[0][0] < now - self._horizon:
            self._ttft.popleft()
