"""One managed pool's replicas as the controller sees them, and the command line each runs.

A replica is `starting` (cold start or waking, not yet ready), `ready` (in the balancer),
`draining` (out of the balancer, finishing what it holds, then stopped) or `sleeping` (the
warm tier: the process lives, the engine has released its weights and cache). A CPU replica
holds the cores it runs on (none while it sleeps: it keeps the grant it had, to ask for those
cores first when it wakes). A pool also
holds the requests waiting for a replica to become ready (a HoldQueue of futures the gateway's
proxy awaits).
"""

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from inferplane.config.schema import ModelSpec, PoolSpec
from inferplane.control.actuators.base import Backoff, ReplicaHandle, ReplicaSpec
from inferplane.control.autoscaler import Autoscaler, ScaleDecision
from inferplane.control.core_book import CoreGrant
from inferplane.control.holding import HoldQueue
from inferplane.control.signals import SignalWindow
from inferplane.gateway.routing.registry import Replica

Phase = Literal["starting", "ready", "draining", "sleeping"]
Tier = Literal["hot", "warm", "cold"]


@dataclass
class Managed:
    """A replica the controller runs: its actuator handle, phase and where it came from."""

    handle: ReplicaHandle
    phase: Phase
    since: float
    promoted_from: Tier = "cold"  # the tier it is being brought to hot from
    # The gateway's record of it while it was routable: once out of the balancer, its
    # in_flight still counts the gateway's requests on it, which a drain waits for.
    record: Replica | None = None
    cores: CoreGrant | None = None  # the cores it runs pinned to (None: not pinned)
    # Its /admin/sleep or /admin/wake while on its way: a wake is sent after the sleep it
    # undoes, and a waking replica is probed for /ready only once its wake has returned.
    admin_call: "asyncio.Task[None] | None" = None


@dataclass
class PoolRuntime:
    """Everything the controller keeps per managed pool."""

    name: str
    spec: PoolSpec
    replica_spec: ReplicaSpec
    autoscaler: Autoscaler
    window: SignalWindow
    holds: HoldQueue[asyncio.Future[bool]]
    backoff: Backoff = field(default_factory=Backoff)
    replicas: dict[str, Managed] = field(default_factory=dict)
    restarts_due: list[float] = field(default_factory=list)
    restarts: int = 0
    arrivals_seen: float = 0.0
    refusals_seen: int = 0  # the gateway gate's refusals already counted as demand
    # Requests held since the last tick: arrivals for the autoscaler, which sees a request
    # the gateway finished only once it finished, and a released one in neither place
    # until the proxy has picked its replica.
    holds_since_tick: int = 0
    scored_holds: int = 0  # held requests the tiers counted, not to count again once finished
    last_decision: ScaleDecision | None = None
    pinned: int | None = None  # a fixed size (a rollout's canary) instead of the autoscaler's

    def in_phase(self, *phases: Phase) -> list[Managed]:
        return [m for m in self.replicas.values() if m.phase in phases]

    @property
    def held(self) -> int:
        """Requests the gateway holds for this pool until a replica is ready."""
        return len(self.holds)

    @property
    def active(self) -> int:
        """What counts toward the autoscaler's current size: up, coming up, or due back."""
        return len(self.in_phase("starting", "ready")) + len(self.restarts_due)

    @property
    def tier(self) -> Tier:
        if self.in_phase("ready", "starting"):
            return "hot"
        return "warm" if self.in_phase("sleeping") else "cold"


def serve_args(name: str, model: ModelSpec, kv_cache_memory: str) -> tuple[str, ...]:
    """`inferplane serve` arguments for a fleet model (the host and port are the actuator's)."""
    args = [model.source, "--served-model-name", name, "--model-version", model.version]
    args += ["--dtype", model.dtype, "--quantization", model.quantization]
    args += ["--task", model.task, "--kv-cache-memory", kv_cache_memory]
    if model.max_model_len is not None:
        args += ["--max-model-len", str(model.max_model_len)]
    if model.stream_interval != 1:
        args += ["--stream-interval", str(model.stream_interval)]
    return tuple(args)


def replica_spec(pool: str, spec: PoolSpec, model: ModelSpec, kv_cache_memory: str) -> ReplicaSpec:
    return ReplicaSpec(pool, spec.model, serve_args(spec.model, model, kv_cache_memory))
