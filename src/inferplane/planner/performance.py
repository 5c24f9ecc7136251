"""A roofline performance model of one replica, and the replica count for a p95 latency target.

One decode step of `b` sequences at mean context `c`, on a replica of `tp` GPUs:

    bytes   = weights / tp + b x c x KV bytes per token per GPU
    flops   = b x (2 x (linear + lm_head params) + 4 x layers x heads x head_dim x c) / tp
    step    = max(bytes / (bandwidth x eff_bw), flops / (peak x eff_compute))
              + 2 x layers all-reduces + a fixed per-step overhead

A prefill of `n` prompt tokens is bounded by compute (and, for tiny prompts, by one weight read):

    flops   = (2 x (linear + lm_head params) x n + 2 x layers x heads x head_dim x n^2) / tp
    prefill = max(flops / (peak x eff_compute), weights / tp / (bandwidth x eff_bw)) + all-reduces

An all-reduce of m bytes costs latency + 2 (tp - 1) / tp x m / link bandwidth (a ring).

Continuous batching at concurrency b: prefills steal a fraction f = b x prefill / S of the
replica's time, so TPOT = step / (1 - f) and a request's service time S = prefill +
(out - 1) x TPOT; solving both gives S^2 - (P + bP + D) S + bP^2 = 0 with P = prefill,
D = (out - 1) x step. TTFT = prefill. Prompt and output lengths are taken at their means.

Queueing: the fleet is an M/M/c queue with c = replicas x b slots, each busy for S. The p95
latency is S plus the p95 wait, P(W > t) = ErlangC x exp(-(c/S - rate) t); replicas are added
until that meets the target and utilisation stays at or under a cap (0.8 by default), which
keeps headroom for bursts the Poisson assumption does not see.
"""

import functools
import math
from dataclasses import dataclass, field

from inferplane.planner.efficiency import Efficiency
from inferplane.planner.gpus import GpuSpec
from inferplane.planner.vram import ServedModel, kv_bytes_per_token, weights_bytes

_MAX_REPLICAS = 100_000
_P95_TAIL = 0.05
_NEGLIGIBLE = 1e-12


@dataclass(frozen=True)
class PerfAssumptions:
    nvlink_allreduce_latency_s: float = 10e-6
    pcie_allreduce_latency_s: float = 30e-6
    step_overhead_s: float = 0.5e-3  # scheduling, sampling and launch gaps per engine step
    max_utilization: float = 0.8

    def describe(self) -> list[str]:
        return [
            f"all-reduce latency: {self.nvlink_allreduce_latency_s * 1e6:.0f} us on NVLink, "
            f"{self.pcie_allreduce_latency_s * 1e6:.0f} us on PCIe",
            f"engine step overhead: {self.step_overhead_s * 1e3:.1f} ms",
            f"utilisation cap per replica: {self.max_utilization:.0%}",
            "queueing: M/M/c over replicas x batch slots; prompt and output lengths at their means",
        ]


@dataclass(frozen=True)
class Workload:
    """Traffic: arrivals per second and mean lengths; the p95 end-to-end latency target."""

    requests_per_s: float
    input_tokens: int
    output_tokens: int
    p95_latency_s: float | None = None

    def __post_init__(self) -> None:
        if self.requests_per_s < 0 or self.input_tokens < 1 or self.output_tokens < 1:
            raise ValueError(
                "workload: requests must be >= 0 and input/output tokens >= 1 "
                f"(got {self.requests_per_s}/s, {self.input_tokens} in, {self.output_tokens} out)"
            )

    @property
    def tokens_per_request(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Replica:
    """One serving replica: a model on `tensor_parallel` GPUs of one kind."""

    model: ServedModel
    gpu: GpuSpec
    tensor_parallel: int
    efficiency: Efficiency = field(default_factory=Efficiency)
    assumptions: PerfAssumptions = field(default_factory=PerfAssumptions)

    @property
    def _bandwidth(self) -> float:
        return self.gpu.bandwidth_bytes_s * self.efficiency.bandwidth.value

    @property
    def _compute(self) -> float:
        peak = self.gpu.flops(self.model.precision.compute)
        return peak * self.efficiency.compute.value

    def _weights_per_gpu(self) -> float:
        return weights_bytes(self.model.shape, self.model.precision) / self.tensor_parallel

    def _dense_flops_per_token(self) -> float:
        shape = self.model.shape
        return 2.0 * (shape.linear_parameters + shape.vocab_size * shape.hidden_size)

    def _attention_width(self) -> int:
        shape = self.model.shape
        return shape.num_layers * shape.num_heads * shape.head_dim

    def allreduce_s(self, tokens: int) -> float:
        """Two all-reduces per layer of the hidden states of `tokens` tokens."""
        tp = self.tensor_parallel
        if tp == 1:
            return 0.0
        shape = self.model.shape
        message = tokens * shape.hidden_size * self.model.precision.activation_bytes
        latency = (
            self.assumptions.nvlink_allreduce_latency_s
            if self.gpu.nvlink
            else self.assumptions.pcie_allreduce_latency_s
        )
        one = latency + 2 * (tp - 1) / tp * message / self.gpu.interconnect_bytes_s
        return 2 * shape.num_layers * one

    @functools.cached_property
    def _decode_terms(self) -> tuple[float, float, float, int, float, float]:
        """What decode_step_s needs of the replica, worked out once: the simulator asks for
        steps by the million."""
        kv_token = kv_bytes_per_token(
            self.model.shape, self.model.precision.kv_bytes, self.tensor_parallel
        )
        return (kv_token, self._weights_per_gpu(), self._dense_flops_per_token(),
                self._attention_width(), self._bandwidth, self._compute)  # fmt: skip

    def decode_step_s(self, batch: int, context: float) -> float:
        kv_token, weights, dense, width, bandwidth, compute = self._decode_terms
        moved = weights + batch * context * kv_token
        per_token = dense + 4 * width * context
        flops = batch * per_token / self.tensor_parallel
        roofline = max(moved / bandwidth, flops / compute)
        return roofline + self.allreduce_s(batch) + self.assumptions.step_overhead_s

    def prefill_s(self, tokens: int) -> float:
        dense = self._dense_flops_per_token() * tokens
        attention = 2 * self._attention_width() * tokens * tokens
        compute = (dense + attention) / self.tensor_parallel / self._compute
        weight_read = self._weights_per_gpu() / self._bandwidth
        return max(compute, weight_read) + self.allreduce_s(tokens)


@dataclass(frozen=True)
class Latency:
    """What one replica does at a concurrency, before any queueing."""

    concurrency: int
    ttft_s: float
    tpot_s: float
    service_s: float

    @property
    def requests_per_s(self) -> float:
        return self.concurrency / self.service_s


def latency_at(replica: Replica, workload: Workload, concurrency: int) -> Latency:
    """TTFT, TPOT and service time with `concurrency` requests always in flight."""
    prefill = replica.prefill_s(workload.input_tokens)
    mean_context = workload.input_tokens + workload.output_tokens / 2
    step = replica.decode_step_s(concurrency, mean_context)
    decode = (workload.output_tokens - 1) * step
    b = concurrency
    middle = prefill + b * prefill + decode
    service = (middle + math.sqrt(middle * middle - 4 * b * prefill * prefill)) / 2
    stolen = b * prefill / service  # the share of time prefills take from decode steps
    return Latency(b, prefill, step / (1 - stolen), service)


def erlang_c(servers: int, offered: float) -> float:
    """Probability an arrival waits in M/M/c (offered load in Erlangs, < servers)."""
    blocking = 1.0
    for k in range(1, servers + 1):  # Erlang B by its stable recurrence
        blocking = offered * blocking / (k + offered * blocking)
        if k > offered and blocking < _NEGLIGIBLE:
            return 0.0  # past the load, blocking only falls: nobody waits in practice
    utilisation = offered / servers
    return blocking / (1 - utilisation * (1 - blocking))


def p95_latency_s(latency: Latency, replicas: int, requests_per_s: float) -> float:
    """Service time plus the 95th percentile of the M/M/c wait; inf when overloaded."""
    servers = replicas * latency.concurrency
    offered = requests_per_s * latency.service_s
    if offered >= servers:
        return math.inf
    if offered == 0:
        return latency.service_s
    waiting = erlang_c(servers, offered)
    drain = servers / latency.service_s - requests_per_s
    wait = math.log(waiting / _P95_TAIL) / drain if waiting > _P95_TAIL else 0.0
    return latency.service_s + wait


def replicas_needed(
    latency: Latency, workload: Workload, max_utilization: float
) -> tuple[int, float] | None:
    """The fewest replicas that meet the target under the cap, and their p95; None if none."""
    target = workload.p95_latency_s if workload.p95_latency_s is not None else math.inf
    if latency.service_s > target:
        return None
    capacity = latency.requests_per_s * max_utilization
    replicas = max(1, math.ceil(workload.requests_per_s / capacity))
    while replicas <= _MAX_REPLICAS:
        p95 = p95_latency_s(latency, replicas, workload.requests_per_s)
        if p95 <= target:
            return replicas, p95
        replicas += 1
    return None
