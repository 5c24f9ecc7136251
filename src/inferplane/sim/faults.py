"""Faults to inject into a simulation: replica crashes and spot interruptions.

Given faults name a time, a kind and a replica as the simulator names them (r0, r1, ... in
start order, per pool); one that names a replica not running then changes nothing. Random
faults: every replica that starts draws its time to a crash from an exponential distribution
with mean `crash_mtbf_s` and, in a pool of spot capacity, its time to an interruption notice
from one with mean `spot_mtbi_s`. The draws come from one generator per pool seeded from the
run's seed, in start order, so a run repeats exactly.

What a fault does is the controller's and the gateway's business (scaling.py, gateway.py): a
crash loses the process at once and the controller restarts it after a backoff; a spot notice
drains the replica and starts a replacement, and `spot_notice_s` later the instance is gone.
"""

import functools
import random
from dataclasses import dataclass
from typing import Literal

from inferplane.sim.events import EventLoop
from inferplane.sim.replica import SimReplica
from inferplane.sim.scaling import SimScaler

FaultKind = Literal["crash", "spot"]
SPOT_NOTICE_S = 120.0  # AWS's two-minute warning; GCP and Azure give 30 s


@dataclass(frozen=True)
class FaultEvent:
    """One fault at a given time; `pool` None means the pool being simulated (or every one)."""

    at_s: float
    kind: FaultKind
    replica: str = "r0"
    pool: str | None = None


@dataclass(frozen=True)
class Faults:
    events: tuple[FaultEvent, ...] = ()
    crash_mtbf_s: float | None = None  # mean seconds between crashes of one replica
    spot_mtbi_s: float | None = None  # mean seconds between interruptions of one spot replica
    spot_notice_s: float = SPOT_NOTICE_S

    def __post_init__(self) -> None:
        for name in ("crash_mtbf_s", "spot_mtbi_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 seconds (got {value}); unset means none")
        if self.spot_notice_s < 0:
            raise ValueError(f"spot_notice_s must be >= 0 (got {self.spot_notice_s})")
        if any(event.at_s < 0 for event in self.events):
            raise ValueError("fault times must be >= 0 seconds from the start of the trace")


class PoolFaults:
    """Injects one pool's faults on the run's event loop."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self, faults: Faults, pool: str, scaler: SimScaler, loop: EventLoop, seed: int, spot: bool
    ) -> None:
        self.faults, self.pool, self.scaler, self.loop = faults, pool, scaler, loop
        self.spot = spot
        self.random = random.Random(f"{seed}:{pool}")
        scaler.on_start = self._started
        for event in faults.events:
            if event.pool in (None, pool):
                self.loop.at(event.at_s, functools.partial(self._fire, event.kind, event.replica))

    def _started(self, sim: SimReplica) -> None:
        now = self.loop.clock.now
        if self.faults.crash_mtbf_s is not None:
            at = now + self.random.expovariate(1 / self.faults.crash_mtbf_s)
            self.loop.at(at, lambda: self.scaler.crash(sim))
        if self.spot and self.faults.spot_mtbi_s is not None:
            at = now + self.random.expovariate(1 / self.faults.spot_mtbi_s)
            self.loop.at(at, lambda: self.scaler.spot_notice(sim, self.faults.spot_notice_s))

    def _fire(self, kind: FaultKind, name: str) -> None:
        sim = next((r for r in self.scaler.replicas if r.name == name), None)
        if sim is None:
            return
        if kind == "crash":
            self.scaler.crash(sim)
        else:
            self.scaler.spot_notice(sim, self.faults.spot_notice_s)
