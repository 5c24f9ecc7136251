"""Options for serving a model: every GPU kind x tensor-parallel degree that fits, ranked.

An option is a replica shape (GPU kind, GPUs per replica) with the concurrency per replica
and replica count that serve the workload at the lowest cost while meeting the p95 target.
Concurrency is chosen from a ladder (1, 2, 3, 4, 6, 8, ... up to what fits in memory at
prompt + output tokens, and at most `max_concurrency`, the engine's sequence limit).
Tensor-parallel degrees are 1, 2, 4, 8 within one node, where the heads divide evenly.

    $/hour        replicas x GPUs per replica x $/GPU-hour
    $/month       $/hour x 730
    $ per 1M tok  $/hour / (prompt + output tokens served per hour) x 1e6, at the workload's
                  rate, or at the fleet's capacity (utilisation cap) when no rate is given

An option that cannot meet the target at any concurrency is still listed (marked as missing
it) at its cheapest concurrency, so the cost of relaxing the target is visible.

Ranking: options that meet the target first, then priced before unpriced, then by $ per 1M
tokens at the requested capacity (on-demand, spot or reserved), then by p95 latency.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from inferplane.planner.efficiency import EfficiencyTable
from inferplane.planner.gpus import GpuSpec
from inferplane.planner.performance import (
    Latency,
    PerfAssumptions,
    Replica,
    Workload,
    latency_at,
    replicas_needed,
)
from inferplane.planner.prices import CAPACITIES, PriceLookup
from inferplane.planner.vram import ServedModel, max_batch

HOURS_PER_MONTH = 730
TP_DEGREES = (1, 2, 4, 8)
_LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


@dataclass(frozen=True)
class PlanRequest:
    model: ServedModel
    workload: Workload
    gpus: tuple[GpuSpec, ...]
    prices: PriceLookup
    capacity: str = "on-demand"
    max_gpus_per_replica: int = 8
    max_concurrency: int = 256
    efficiency: EfficiencyTable = field(default_factory=EfficiencyTable)
    perf: PerfAssumptions = field(default_factory=PerfAssumptions)

    def __post_init__(self) -> None:
        if self.capacity not in CAPACITIES:
            raise ValueError(f"capacity {self.capacity!r}: use one of {', '.join(CAPACITIES)}")


@dataclass(frozen=True)
class Cost:
    capacity: str
    gpu_hourly_usd: float
    price_per_hour: float
    cost_per_month: float
    cost_per_million_tokens: float


@dataclass(frozen=True)
class Option:
    gpu: str
    gpus_per_replica: int
    replicas: int
    concurrency: int
    max_batch: int  # sequences of the full context one replica holds
    ttft_s: float
    tpot_s: float
    p95_latency_s: float
    output_tokens_per_s: float  # per replica, at the chosen concurrency
    meets_target: bool
    measured: bool  # efficiency factors measured on this GPU (else assumed)
    costs: Mapping[str, Cost]
    capacity: str

    @property
    def total_gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    @property
    def cost(self) -> Cost | None:
        return self.costs.get(self.capacity)

    @property
    def price_per_hour(self) -> float | None:
        return None if self.cost is None else self.cost.price_per_hour

    @property
    def cost_per_million_tokens(self) -> float | None:
        return None if self.cost is None else self.cost.cost_per_million_tokens


def tensor_parallel_degrees(request: PlanRequest, gpu: GpuSpec) -> list[int]:
    shape = request.model.shape
    limit = min(gpu.max_per_node, request.max_gpus_per_replica)
    return [
        tp
        for tp in TP_DEGREES
        if tp <= limit
        and shape.num_heads % tp == 0
        and (shape.num_kv_heads % tp == 0 or tp % shape.num_kv_heads == 0)
    ]


def rank_options(request: PlanRequest) -> list[Option]:
    """Every fitting (GPU, tensor-parallel degree), best first."""
    options = [
        option
        for gpu in request.gpus
        for tp in tensor_parallel_degrees(request, gpu)
        if (option := evaluate(request, gpu, tp)) is not None
    ]
    return sorted(options, key=_rank_key)


def _rank_key(option: Option) -> tuple[bool, bool, float, float]:
    cost = option.cost_per_million_tokens
    return (not option.meets_target, cost is None, cost or 0.0, option.p95_latency_s)


def evaluate(request: PlanRequest, gpu: GpuSpec, tp: int) -> Option | None:
    """The cheapest way to serve the workload on replicas of `tp` x `gpu`; None if none fit."""
    holds = max_batch(request.model, gpu.memory_bytes, tp)
    if holds == 0:
        return None
    replica = Replica(request.model, gpu, tp, request.efficiency.for_gpu(gpu.name), request.perf)
    best = _best_concurrency(request, replica, _concurrency_limit(request, gpu, tp))
    return _option(request, replica, holds, best)


def _concurrency_limit(request: PlanRequest, gpu: GpuSpec, tp: int) -> int:
    # Paged KV caches hold each sequence's actual tokens, not the full context.
    tokens = min(request.model.context, request.workload.tokens_per_request)
    paged = ServedModel(request.model.shape, request.model.precision, tokens, request.model.memory)
    return max(1, min(max_batch(paged, gpu.memory_bytes, tp), request.max_concurrency))


Choice = tuple[Latency, int, float, bool]  # latency, replicas, p95, meets the target


def _best_concurrency(request: PlanRequest, replica: Replica, limit: int) -> Choice:
    """Fewest replicas (then lowest p95) that meet the target; else the cheapest at any p95."""
    workload, cap = request.workload, request.perf.max_utilization
    relaxed = replace(workload, p95_latency_s=None)
    met: list[Choice] = []
    missed: list[Choice] = []
    for concurrency in sorted({b for b in _LADDER if b <= limit} | {limit}):
        latency = latency_at(replica, workload, concurrency)
        found = replicas_needed(latency, workload, cap)
        if found is not None:
            met.append((latency, found[0], found[1], True))
        elif (anyway := replicas_needed(latency, relaxed, cap)) is not None:
            missed.append((latency, anyway[0], anyway[1], False))
    return min(met or missed, key=lambda choice: (choice[1], choice[2]))


def _option(request: PlanRequest, replica: Replica, holds: int, choice: Choice) -> Option:
    latency, replicas, p95, meets = choice
    efficiency = replica.efficiency
    return Option(
        gpu=replica.gpu.name,
        gpus_per_replica=replica.tensor_parallel,
        replicas=replicas,
        concurrency=latency.concurrency,
        max_batch=holds,
        ttft_s=latency.ttft_s,
        tpot_s=latency.tpot_s,
        p95_latency_s=p95,
        output_tokens_per_s=latency.requests_per_s * request.workload.output_tokens,
        meets_target=meets,
        measured=efficiency.bandwidth.measured or efficiency.compute.measured,
        costs=_costs(request, replica, replicas, latency),
        capacity=request.capacity,
    )


def _costs(
    request: PlanRequest, replica: Replica, replicas: int, latency: Latency
) -> dict[str, Cost]:
    workload = request.workload
    rate = workload.requests_per_s or (
        replicas * latency.requests_per_s * request.perf.max_utilization
    )
    tokens_per_hour = rate * 3600 * workload.tokens_per_request
    gpus = replicas * replica.tensor_parallel
    costs: dict[str, Cost] = {}
    for capacity in CAPACITIES:
        hourly = request.prices(replica.gpu.name, capacity)
        if hourly is None:
            continue
        per_hour = hourly * gpus
        per_million = per_hour / tokens_per_hour * 1e6
        costs[capacity] = Cost(capacity, hourly, per_hour, per_hour * HOURS_PER_MONTH, per_million)
    return costs
