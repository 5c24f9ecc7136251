"""The actuator seam: start a replica from a spec, stop one (draining first), list them.

The controller speaks only this protocol; local processes, Kubernetes and Ray implement it.
`Backoff` is the restart delay for a replica that keeps crashing (doubling, capped, reset
once a replica has stayed up long enough). An actuator whose replicas run on this host can
also move a running replica to other cores (`PinsCores`: a woken replica whose cores were
given away while it slept).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

ReplicaPhase = Literal["starting", "ready", "draining", "sleeping", "exited"]


@dataclass(frozen=True)
class ReplicaSpec:
    """What one replica runs: the pool it belongs to and the `inferplane serve` arguments."""

    pool: str
    model: str  # the name clients send (served model name)
    args: tuple[str, ...]  # everything after `inferplane serve`, without --host / --port
    cpus: tuple[int, ...] = ()  # the cores it is pinned to (empty: not pinned)
    threads: int | None = None  # its torch / OpenMP threads (None: the engine's default)


@dataclass
class ReplicaHandle:
    """A replica the actuator started; `returncode` is set once its process has exited. On a
    cluster `url` is empty until the replica is placed on a node."""

    id: str
    spec: ReplicaSpec
    url: str
    pid: int
    started_at: float
    log_path: str = ""
    returncode: int | None = None
    expected_exit: bool = False  # the controller asked it to stop: not a crash
    node: str = ""  # the cluster node it runs on (empty for local processes)
    # Why it is not placed yet, in words (a cluster backend with no node that has room);
    # empty while it is placed or on its way.
    unplaced: str = ""


class Actuator(Protocol):
    def start(self, spec: ReplicaSpec) -> ReplicaHandle: ...

    async def stop(self, replica_id: str, drain: bool = True) -> None: ...

    def list(self) -> Sequence[ReplicaHandle]: ...

    def reap(self) -> Sequence[ReplicaHandle]:
        """Replicas whose process exited since the last call (crashed or stopped)."""
        ...

    async def close(self) -> None:
        """Stop every replica; nothing the actuator started outlives this."""
        ...


@runtime_checkable
class PinsCores(Protocol):
    def pin(self, replica_id: str, cpus: Sequence[int]) -> None:
        """Move every thread of the replica (and of its child processes) onto these cores."""
        ...


@dataclass(frozen=True)
class BackoffConfig:
    base_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0  # a replica up this long starts the doubling afresh

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s:
            raise ValueError("restart backoff needs 0 < base_s <= max_s, e.g. 1 and 30")


@dataclass
class Backoff:
    """Doubling restart delay per pool: 1, 2, 4, ... seconds up to the cap."""

    config: BackoffConfig = field(default_factory=BackoffConfig)
    failures: int = 0

    def next_delay(self, uptime_s: float) -> float:
        if uptime_s >= self.config.reset_after_s:
            self.failures = 0
        delay = min(self.config.base_s * 2**self.failures, self.config.max_s)
        self.failures += 1
        return float(delay)
