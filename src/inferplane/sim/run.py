"""simulate(): replay a trace through one pool of a fleet under one balancing policy.

Wires the parts on one event loop: arrivals from the trace go to the SimGateway (real policy,
real registry), which feeds SimReplicas (real scheduler and KV cache, planner step times);
every controller interval the SimScaler asks the real autoscaler for the pool's size, and
every health interval the gateway scrapes the replicas. The pool's minimum is up and ready at
the first arrival (start_ready) unless told to start cold.

The run ends when every request has finished or been refused and the pool has settled at its
floor (its minimum, or zero) or `max_tail_s` after the last request, whichever comes first, so
the cost of scaling back down is counted.
"""

from dataclasses import dataclass, field
from typing import Any

from inferplane.config.schema import Balancing, FleetConfig, PoolSpec, ReplicaBounds
from inferplane.control.demand import served_model
from inferplane.control.settings import ControllerConfig
from inferplane.engine.core.config import EngineConfig
from inferplane.gateway.routing.balancer import POLICIES, Policy, policy_from_config
from inferplane.ledger.pricing import canonical_gpu, catalog_for
from inferplane.planner.efficiency import Efficiency
from inferplane.planner.gpus import GpuSpec, get_gpu
from inferplane.planner.precision import get_precision
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel
from inferplane.sim.clock import SimClock
from inferplane.sim.events import EventLoop
from inferplane.sim.gateway import GatewaySettings, SimGateway
from inferplane.sim.latency import (
    PlannerStepTime,
    StepTimeModel,
    kv_cache_blocks,
    planner_replica,
)
from inferplane.sim.records import RequestRecord
from inferplane.sim.replica import ReplicaEvents, ReplicaShape, SimReplica
from inferplane.sim.report import RunFacts, SimReport, build_report
from inferplane.sim.scaling import SimScaler
from inferplane.sim.trace import Trace

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


def simulate(
    fleet: FleetConfig,
    pool_name: str,
    trace: Trace,
    gpu: str | None = None,
    policy: str | None = None,
    *,
    options: SimOptions | None = None,
) -> SimReport:
    """Replay `trace` through the fleet's pool `pool_name`; deterministic for a seed."""
    options = options or SimOptions()
    spec = _pool(fleet, pool_name, options)
    gpu_spec = get_gpu(canonical_gpu(_gpu_name(spec, gpu)))
    balancing = _balancing(fleet.balancing, policy)
    run = _Run(fleet, pool_name, spec, gpu_spec, policy_from_config(balancing, options.seed),
               options)  # fmt: skip
    run.replay(trace)
    hourly = catalog_for(fleet.pricing).hourly_usd(
        gpu_spec.name, fleet.pricing.provider, spec.capacity
    )
    facts = RunFacts(
        pool=pool_name,
        policy=balancing.policy,
        gpu=gpu_spec.name,
        model=run.model.shape.name,
        seed=options.seed,
        records=run.records,
        replicas=run.scaler.replicas,
        timeline=run.scaler.timeline,
        events=run.scaler.events,
        end_s=run.end_s or 0.0,
        hourly_usd=hourly,
        settings=run.settings(trace),
    )
    return build_report(facts)


def _pool(fleet: FleetConfig, name: str, options: SimOptions) -> PoolSpec:
    spec = fleet.pools.get(name)
    if spec is None:
        raise ValueError(f"unknown pool {name!r}: the fleet defines {', '.join(fleet.pools)}")
    if spec.is_external:
        raise ValueError(f"pool {name!r} fronts external endpoints: simulate a managed pool")
    if options.replicas is not None:
        if options.replicas < 1:
            raise ValueError(f"replicas must be >= 1 (got {options.replicas})")
        bounds = ReplicaBounds(min=options.replicas, max=options.replicas)
        spec = spec.model_copy(update={"replicas": bounds})
    return spec


def _gpu_name(spec: PoolSpec, gpu: str | None) -> str:
    if gpu is not None:
        return gpu
    if spec.resources.gpu == "none":
        raise ValueError("the pool runs without a GPU: name one to simulate, e.g. --gpu H100")
    return spec.resources.gpu


def _balancing(balancing: Balancing, policy: str | None) -> Balancing:
    if policy is None:
        return balancing
    if policy not in POLICIES:
        raise ValueError(f"unknown balancing policy {policy!r}: use one of {', '.join(POLICIES)}")
    return Balancing(policy=policy, load_bound=balancing.load_bound)  # type: ignore[arg-type]


def _served(fleet: FleetConfig, spec: PoolSpec, shape: str | None) -> ServedModel:
    model = fleet.models[spec.model]
    if shape is None:
        return served_model(spec.model, model)
    presets = preset_shapes()
    if shape.lower() not in presets:
        raise ValueError(f"unknown model shape {shape!r}: use one of {', '.join(presets)}")
    found = presets[shape.lower()]
    dtype = "int8" if model.quantization == "int8" else model.dtype
    precision = get_precision("bf16" if dtype == "auto" else dtype)
    return ServedModel(found, precision, model.max_model_len or min(4096, found.max_context))


class _Run:
    """One simulation's objects on one event loop."""

    def __init__(  # noqa: PLR0917
        self,
        fleet: FleetConfig,
        pool: str,
        spec: PoolSpec,
        gpu: GpuSpec,
        policy: Policy,
        options: SimOptions,
    ) -> None:
        self.spec, self.options = spec, options
        self.loop = EventLoop(SimClock())
        self.model = _served(fleet, spec, options.shape)
        self.tp = options.tensor_parallel or spec.resources.count
        self.step_time = options.step_time or PlannerStepTime(
            planner_replica(self.model, gpu, self.tp, options.efficiency)
        )
        blocks = options.kv_blocks or kv_cache_blocks(self.model, gpu, self.tp, options.block_size)
        self.shape = ReplicaShape(blocks, options.block_size, options.max_num_seqs,
                                  options.max_num_batched_tokens, self.model.context,
                                  options.max_waiting, self.tp)  # fmt: skip
        self.gateway = SimGateway(pool, spec.model, policy, self.loop, options.gateway,
                                  self._wake)  # fmt: skip
        self.scaler = SimScaler(spec, self.gateway, self.loop, self._replica, options.cold_start_s,
                                wake_s=options.wake_s)  # fmt: skip
        self.events = ReplicaEvents(self._first_token, self._finished, self.scaler.replica_empty)
        self.records: list[RequestRecord] = []
        self.finished = 0
        self.last_work_s = 0.0
        self.end_s: float | None = None
        self._wake_due = False
        self._trace: Trace | None = None
        self._next = 0

    def _replica(self, name: str) -> SimReplica:
        rid = self.gateway.replica_id(name)
        return SimReplica(name, rid, self.shape, self.step_time, self.loop, self.events)

    def replay(self, trace: Trace) -> None:
        self._trace, self.scaler.epoch_offset = trace, trace.start_epoch
        self.records = [
            RequestRecord(i, r.arrival_s, r.prompt_tokens, r.output_tokens)
            for i, r in enumerate(trace.requests)
        ]
        for _ in range(self.spec.replicas.min):
            self.scaler.start(ready_now=self.options.start_ready)
        if self.records:
            self.loop.at(self.records[0].arrival_s, self._arrive)
        self.loop.at(0.0, self._scrape)
        self.loop.at(0.0, self._tick)
        self.loop.run()

    # -- periodic work ------------------------------------------------------------------------

    def _arrive(self) -> None:
        record = self.records[self._next]
        self._next += 1
        self.gateway.arrive(record)
        if self._next < len(self.records):
            self.loop.at(self.records[self._next].arrival_s, self._arrive)

    def _scrape(self) -> None:
        if self._running():
            self.gateway.scrape()
            self.loop.after(self.options.gateway.scrape_interval_s, self._scrape)

    def _tick(self) -> None:
        if not self._running():
            return
        self.scaler.tick()
        self.loop.after(self.options.controller_interval_s, self._tick)

    def _wake(self) -> None:
        """A held request ticks the controller now; wakes before that tick coalesce."""
        if not self._wake_due:
            self._wake_due = True
            self.loop.after(0.0, self._woken)

    def _woken(self) -> None:
        self._wake_due = False
        self.scaler.tick()

    @property
    def pending(self) -> int:
        return self._next - self.finished - self.gateway.rejected

    def _running(self) -> bool:
        """Whether requests remain, or the pool is still settling after the last of them."""
        if self.end_s is not None:
            return False
        now = self.loop.clock.now
        if self._next < len(self.records) or self.pending:
            self.last_work_s = now
            return True
        settled = self.scaler.active == self.spec.replicas.min and not self.scaler.live(
            "starting", "draining"
        )
        if settled or now - self.last_work_s >= self.options.max_tail_s:
            self.end_s = now
            return False
        return True

    # -- replica events -----------------------------------------------------------------------

    def _first_token(self, sim: SimReplica, record: RequestRecord) -> None:
        self.gateway.first_token(sim, record)
        if record.ttft_s is not None:
            self.scaler.observe_ttft(record.ttft_s)

    def _finished(self, sim: SimReplica, record: RequestRecord) -> None:
        self.gateway.finished(sim, record)
        self.finished += 1

    def settings(self, trace: Trace) -> dict[str, Any]:
        return {
            "trace": trace.source, "trace_requests": len(trace), "trace_span_s": trace.span_s,
            "replicas": self.options.replicas, "min": self.spec.replicas.min,
            "max": self.spec.replicas.max, "autoscale": self.spec.autoscale.metric,
            "cold_start_s": self.options.cold_start_s, "wake_s": self.options.wake_s,
            "keep_warm": self.spec.tier.keep_warm, "tensor_parallel": self.tp,
            "dtype": self.model.precision.name, "max_model_len": self.model.context,
            "kv_blocks": self.shape.num_blocks, "block_size": self.shape.block_size,
            "max_num_seqs": self.shape.max_num_seqs,
            "max_num_batched_tokens": self.shape.max_num_batched_tokens,
        }  # fmt: skip
