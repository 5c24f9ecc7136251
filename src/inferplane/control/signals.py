"""Pool signals for the autoscaler: what they are, and the pure functions that build them.

`pool_signals` is the pool's Signals as the controller builds them each tick (and the
simulator, from the same function): the gateway's record of each replica (waiting, in flight,
KV usage), the requests that arrived since the last tick, the requests held at the gateway for
a replica, queued by its overload gate or refused by it since the last tick (waiting too) and
the TTFT p95 of the pool's window. A SignalWindow keeps the TTFT
samples of the last `horizon_s` seconds for that p95; `summarize` sums replica loads into one
`Signals`.
"""

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

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


class LoadRecord(Protocol):
    """What the signals read of one replica (the gateway's registry record is one)."""

    @property
    def routable(self) -> bool: ...
    @property
    def waiting(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def kv_usage(self) -> float: ...


def summarize(
    replicas: Sequence[ReplicaLoad], arrivals: int = 0, ttft_p95_s: float | None = None
) -> Signals:
    """One pool's Signals from its replicas' loads, its arrivals and its TTFT p95."""
    ready = [replica for replica in replicas if replica.ready]
    utils = [r.gpu_util for r in replicas if r.gpu_util is not None]
    return Signals(
        waiting=sum(replica.waiting for replica in replicas),
        in_flight=sum(replica.in_flight for replica in replicas),
        replicas_ready=len(ready),
        ttft_p95_s=ttft_p95_s,
        kv_usage=sum(r.kv_usage for r in ready) / len(ready) if ready else 0.0,
        requests_since_last=arrivals,
        gpu_util=max(utils) if utils else None,
    )


def pool_signals(
    replicas: Iterable[LoadRecord],
    *,
    arrivals: int,
    held: int,
    ttft_p95_s: float | None,
    queued: int = 0,
    refused: int = 0,
) -> Signals:
    """The pool's Signals from the gateway's records of its replicas (GPU utilisation is not
    scraped: None), plus what the gateway could not place counted as waiting: the requests
    held for a replica, those in its overload queue, and those it refused since the last
    tick (demand that was not served is demand all the same)."""
    loads = [ReplicaLoad(r.routable, r.waiting, r.in_flight, r.kv_usage) for r in replicas]
    signals = summarize(loads, arrivals, ttft_p95_s)
    unplaced = held + queued + refused
    return replace(signals, waiting=signals.waiting + unplaced) if unplaced else signals


class SignalWindow:
    """TTFT samples over a sliding horizon, for the pool's p95."""

    def __init__(self, horizon_s: float = 60.0) -> None:
        if horizon_s <= 0:
            raise ValueError(f"signal window horizon must be > 0 seconds (got {horizon_s})")
        self._horizon = horizon_s
        self._ttft: deque[tuple[float, float]] = deque()

    def observe_ttft(self, now: float, ttft_s: float) -> None:
        self._ttft.append((now, ttft_s))

    def ttft_p95(self, now: float) -> float | None:
        self._expire(now)
        if not self._ttft:
            return None
        return percentile([value for _, value in self._ttft], 0.95)

    def _expire(self, now: float) -> None:
        while self._ttft and self._ttft[0][0] < now - self._horizon:
            self._ttft.popleft()
