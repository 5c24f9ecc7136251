import math

import pytest

from inferplane.planner.efficiency import Efficiency, Factor
from inferplane.planner.gpus import get_gpu
from inferplane.planner.performance import (
    Replica,
    Workload,
    erlang_c,
    latency_at,
    p95_latency_s,
    replicas_needed,
)
from inferplane.planner.precision import get_precision
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel, weights_bytes

SHAPES = preset_shapes()
WORKLOAD = Workload(500_000 / 86_400, 512, 256, 3.0)


def _replica(name: str, gpu: str, tp: int, dtype: str = "bf16") -> Replica:
    return Replica(ServedModel(SHAPES[name], get_precision(dtype), 4096), get_gpu(gpu), tp)


def test_decode_at_batch_one_is_a_weight_read_over_bandwidth() -> None:
    replica = _replica("llama-2-7b", "H100-SXM", 1)
    weights = weights_bytes(SHAPES["llama-2-7b"], get_precision("bf16"))
    roofline = weights / (3.35e12 * 0.7)
    step = replica.decode_step_s(1, 1)
    assert step == pytest.approx(roofline + replica.assumptions.step_overhead_s, rel=0.01)


def test_prefill_is_bounded_by_compute() -> None:
    replica = _replica("llama-2-7b", "H100-SXM", 1)
    shape = SHAPES["llama-2-7b"]
    dense = 2 * (shape.linear_parameters + shape.vocab_size * shape.hidden_size) * 4096
    attention = 2 * 32 * 32 * 128 * 4096**2
    assert replica.prefill_s(4096) == pytest.approx((dense + attention) / (989e12 * 0.5))


def test_more_bandwidth_and_tensor_parallel_decode_faster() -> None:
    h100 = _replica("llama-3-70b", "H100-SXM", 4).decode_step_s(1, 1024)
    h200 = _replica("llama-3-70b", "H200", 4).decode_step_s(1, 1024)
    tp8 = _replica("llama-3-70b", "H100-SXM", 8).decode_step_s(1, 1024)
    fp8 = _replica("llama-3-70b", "H100-SXM", 4, "fp8").decode_step_s(1, 1024)
    assert h200 < h100 and tp8 < h100 and fp8 < h100


def test_measured_efficiency_changes_the_step() -> None:
    slow = Efficiency(Factor(0.35, "measured: x.json (n=1)"), Factor(0.5))
    model = ServedModel(SHAPES["llama-2-7b"], get_precision("bf16"), 4096)
    assumed = Replica(model, get_gpu("L4"), 1)
    measured = Replica(model, get_gpu("L4"), 1, slow)
    assert measured.decode_step_s(1, 1) > 1.9 * assumed.decode_step_s(1, 1) - 0.001


def test_latency_with_prefill_interference() -> None:
    replica = _replica("llama-3-70b", "H100-SXM", 8)
    one, many = latency_at(replica, WORKLOAD, 1), latency_at(replica, WORKLOAD, 32)
    assert one.service_s == pytest.approx(one.ttft_s + 255 * one.tpot_s, rel=1e-6)
    assert many.tpot_s > one.tpot_s and many.requests_per_s > 10 * one.requests_per_s


def test_erlang_c_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = utilisation
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(10_000, 10.0) == 0.0


def test_p95_adds_queueing_and_overload_is_infinite() -> None:
    latency = latency_at(_replica("llama-3-70b", "H100-SXM", 8), WORKLOAD, 8)
    assert p95_latency_s(latency, 1, 1e6) == math.inf
    assert p95_latency_s(latency, 2, 5.0) > latency.service_s
    assert p95_latency_s(latency, 50, 5.0) == latency.service_s


def test_replicas_needed_meet_target_and_cap() -> None:
    latency = latency_at(_replica("llama-3-70b", "H100-SXM", 8), WORKLOAD, 8)
    found = replicas_needed(latency, WORKLOAD, 0.8)
    assert found is not None
    replicas, p95 = found
    assert p95 <= 3.0
    assert WORKLOAD.requests_per_s <= replicas * latency.requests_per_s * 0.8
    slow = latency_at(_replica("llama-3-70b", "A100-80GB", 2), WORKLOAD, 8)
    assert replicas_needed(slow, WORKLOAD, 0.8) is None  # service alone exceeds 3 s


def test_workload_validation() -> None:
    with pytest.raises(ValueError, match="input/output tokens >= 1"):
        Workload(1.0, 0, 10)
