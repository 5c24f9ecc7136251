"""One simulated pool: its gateway view, its controller view and how its replicas are built.

A SimPool holds what the simulator knows of one managed pool of the fleet: the served model
(from the fleet, or a planner preset standing in for it), the GPU it runs on, the step-time
model and KV cache size of one replica, the balancing policy (one object per pool, as the
gateway keeps), the SimGateway in front of it and the SimScaler behind it. Replicas are built
on demand with the engine's real Scheduler and KVCacheManager.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inferplane.config.schema import FleetConfig, PoolSpec, ReplicaBounds
from inferplane.control.demand import served_model
from inferplane.control.settings import ControllerConfig
from inferplane.engine.core.config import EngineConfig
from inferplane.gateway.routing.balancer import Policy
from inferplane.planner.efficiency import Efficiency
from inferplane.planner.gpus import GpuSpec
from inferplane.planner.precision import get_precision, served_format
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel
from inferplane.sim.events import EventLoop
from inferplane.sim.faults import Faults
from inferplane.sim.gateway import GatewaySettings, SimGateway
from inferplane.sim.latency import PlannerStepTime, StepTimeModel, kv_cache_blocks, planner_replica
from inferplane.sim.prompts import Prompts
from inferplane.sim.records import RequestRecord
from inferplane.sim.replica import ReplicaEvents, ReplicaShape, SimReplica
from inferplane.sim.scaling import SimScaler

DEFAULT_COLD_START_S = 30.0  # the planner has no load-time estimate yet
DEFAULT_WAKE_S = 5.0  # a sleeping replica's weights back from host memory; no estimate yet
_ENGINE = EngineConfig(model="sim")
_CONTROLLER = ControllerConfig()


@dataclass(frozen=True)
class SimOptions:
    """How to run: everything not in the fleet file. None means "from the fleet / defaults".

    replicas: a fixed pool size (min = max), to compare sizes without the autoscaler.
    shape: a planner preset (llama-3-8b, ...) standing in for the pool's model source.
    step_time / kv_blocks: replace the planner's step times / the KV cache size.
    faults: crashes and spot interruptions to inject (sim/faults.py); none by default.
    """

    seed: int = 0
    replicas: int | None = None
    cold_start_s: float = DEFAULT_COLD_START_S
    wake_s: float = DEFAULT_WAKE_S  # under tier.keep_warm, a woken replica is ready after this
    start_ready: bool = True
    shape: str | None = None
    tensor_parallel: int | None = None
    step_time: StepTimeModel | None = None
    kv_blocks: int | None = None
    block_size: int = _ENGINE.block_size
    max_num_seqs: int = _ENGINE.max_num_seqs
    max_num_batched_tokens: int = _ENGINE.max_num_batched_tokens
    max_waiting: int = _ENGINE.max_waiting
    efficiency: Efficiency = field(default_factory=Efficiency)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    controller_interval_s: float = _CONTROLLER.interval_s
    max_tail_s: float = 3600.0
    faults: Faults = field(default_factory=Faults)
    decode_stretches: bool = True  # off: one event per engine step (slower, same results)
    # replicas up at the start (within the pool's bounds; default its minimum), as if the
    # autoscaler had been running before the trace began; it takes over from there
    initial_replicas: int | None = None


def sized(spec: PoolSpec, options: SimOptions) -> PoolSpec:
    """The pool as simulated: a fixed size when the options give one."""
    if options.replicas is None:
        return spec
    if options.replicas < 1:
        raise ValueError(f"replicas must be >= 1 (got {options.replicas})")
    bounds = ReplicaBounds(min=options.replicas, max=options.replicas)
    return spec.model_copy(update={"replicas": bounds})


def served(fleet: FleetConfig, spec: PoolSpec, shape: str | None) -> ServedModel:
    model = fleet.models[spec.model]
    if shape is None:
        return served_model(spec.model, model)
    presets = preset_shapes()
    if shape.lower() not in presets:
        raise ValueError(f"unknown model shape {shape!r}: use one of {', '.join(presets)}")
    found = presets[shape.lower()]
    precision = get_precision(served_format(model.dtype, model.quantization))
    return ServedModel(found, precision, model.max_model_len or min(4096, found.max_context))


@dataclass(frozen=True)
class PoolHooks:
    """The run's callbacks a pool reports to."""

    wake: Callable[[], None]  # a held request asks the controller to tick now
    finished: Callable[[RequestRecord], None]


class SimPool:
    """One pool's gateway, scaler and replica factory on the run's event loop."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        name: str,
        fleet: FleetConfig,
        spec: PoolSpec,
        gpu: GpuSpec,
        policy: Policy,
        loop: EventLoop,
        options: SimOptions,
        hooks: PoolHooks,
        block_tokens: int,
    ) -> None:
        self.name, self.spec, self.gpu, self.options, self.hooks = name, spec, gpu, options, hooks
        self.policy_name = policy.name
        self.model = served(fleet, spec, options.shape)
        self.tp = options.tensor_parallel or spec.resources.count
        self.step_time = options.step_time or PlannerStepTime(
            planner_replica(self.model, gpu, self.tp, options.efficiency)
        )
        blocks = options.kv_blocks or kv_cache_blocks(self.model, gpu, self.tp, options.block_size)
        self.shape = ReplicaShape(blocks, options.block_size, options.max_num_seqs,
                                  options.max_num_batched_tokens, self.model.context,
                                  options.max_waiting, self.tp)  # fmt: skip
        self.prompts = Prompts(block_tokens, options.block_size)
        self.gateway = SimGateway(name, spec.model, policy, loop, options.gateway, hooks.wake,
                                  self.prompts)  # fmt: skip
        self.scaler = SimScaler(spec, self.gateway, loop, self._replica, options.cold_start_s,
                                wake_s=options.wake_s)  # fmt: skip
        self.events = ReplicaEvents(self._first_token, self._finished, self.scaler.replica_empty)
        self.loop = loop
        self.records: list[RequestRecord] = []

    def _replica(self, name: str) -> SimReplica:
        rid = self.gateway.replica_id(name)
        return SimReplica(name, rid, self.shape, self.step_time, self.loop, self.events,
                          self.prompts, stretches=self.options.decode_stretches)  # fmt: skip

    def start(self) -> None:
        bounds, wanted = self.spec.replicas, self.options.initial_replicas
        count = bounds.min if wanted is None else min(max(wanted, bounds.min), bounds.max)
        for _ in range(count):
            self.scaler.start(ready_now=self.options.start_ready)

    def _first_token(self, sim: SimReplica, record: RequestRecord) -> None:
        self.gateway.first_token(sim, record)
        if record.ttft_s is not None:
            self.scaler.observe_ttft(record.ttft_s)

    def _finished(self, sim: SimReplica, record: RequestRecord) -> None:
        self.gateway.finished(sim, record)
        self.hooks.finished(record)

    def settled(self) -> bool:
        """At its floor (its minimum, or zero) with nothing starting, draining or due back."""
        scaler = self.scaler
        busy = scaler.live("starting", "draining") or scaler.restarts_due or scaler.crashed
        return scaler.active == self.spec.replicas.min and not busy

    def settings(self) -> dict[str, Any]:
        return {
            "replicas": self.options.replicas, "min": self.spec.replicas.min,
            "max": self.spec.replicas.max, "autoscale": self.spec.autoscale.metric,
            "cold_start_s": self.options.cold_start_s, "wake_s": self.options.wake_s,
            "keep_warm": self.spec.tier.keep_warm, "capacity": self.spec.capacity,
            "tensor_parallel": self.tp, "dtype": self.model.precision.name,
            "max_model_len": self.model.context, "kv_blocks": self.shape.num_blocks,
            "block_size": self.shape.block_size, "max_num_seqs": self.shape.max_num_seqs,
            "max_num_batched_tokens": self.shape.max_num_batched_tokens,
        }  # fmt: skip
