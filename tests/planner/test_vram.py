import pytest

from inferplane.planner.precision import get_precision
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import (
    GIB,
    MemoryAssumptions,
    ServedModel,
    bytes_for_parameters,
    kv_cache_bytes,
    max_batch,
    memory_breakdown,
    weights_bytes,
)

SHAPES = preset_shapes()
FP16 = get_precision("fp16")


def test_seven_billion_parameters_in_fp16_need_14_gb() -> None:
    assert bytes_for_parameters(7e9, FP16) == 14e9
    assert weights_bytes(SHAPES["llama-2-7b"], FP16) / 1e9 == pytest.approx(14, rel=0.05)


def test_seventy_billion_parameters_in_fp16_need_140_gb() -> None:
    assert bytes_for_parameters(70e9, FP16) == 140e9
    assert weights_bytes(SHAPES["llama-2-70b"], FP16) / 1e9 == pytest.approx(140, rel=0.03)
    assert weights_bytes(SHAPES["llama-3-70b"], FP16) / 1e9 == pytest.approx(140, rel=0.03)


def test_llama_2_7b_kv_cache_for_4096_tokens() -> None:
    assert kv_cache_bytes(SHAPES["llama-2-7b"], 4096, 1, 2) == 2 * 32 * 32 * 128 * 4096 * 2
    assert kv_cache_bytes(SHAPES["llama-2-7b"], 4096, 1, 2) == 2_147_483_648


def test_gqa_llama_3_8b_has_a_quarter_of_the_kv_of_full_attention() -> None:
    gqa = kv_cache_bytes(SHAPES["llama-3-8b"], 4096, 1, 2)
    full = kv_cache_bytes(SHAPES["llama-2-7b"], 4096, 1, 2)  # same layers, 32 KV heads
    assert full == 4 * gqa


def test_kv_heads_are_replicated_when_tensor_parallel_exceeds_them() -> None:
    shape = SHAPES["qwen2.5-0.5b"]  # 2 KV heads
    one = kv_cache_bytes(shape, 1024, 1, 2)
    assert kv_cache_bytes(shape, 1024, 1, 2, tensor_parallel=2) == one
    assert kv_cache_bytes(shape, 1024, 1, 2, tensor_parallel=4) == 2 * one


def test_int8_and_int4_weight_sizes() -> None:
    shape = SHAPES["llama-2-7b"]
    sixteen_bit = (shape.embedding_parameters + shape.small_parameters) * 2
    int8 = weights_bytes(shape, get_precision("int8"))
    int4 = weights_bytes(shape, get_precision("int4"))
    assert int8 == shape.linear_parameters + sixteen_bit
    assert int4 == pytest.approx(shape.linear_parameters * (0.5 + 2.5 / 128) + sixteen_bit, abs=1)
    assert bytes_for_parameters(7e9, get_precision("int8")) == 7e9
    assert 3.5e9 < weights_bytes(shape, get_precision("int4")) < 4.0e9


def test_breakdown_sums_its_parts() -> None:
    model = ServedModel(SHAPES["llama-2-7b"], FP16, 4096)
    breakdown = memory_breakdown(model, batch=4)
    assert breakdown.kv_cache_bytes == 4 * 2_147_483_648
    parts = (breakdown.weights_bytes, breakdown.kv_cache_bytes, breakdown.activation_bytes)
    assert breakdown.total_bytes == sum(parts) + breakdown.overhead_bytes
    assert breakdown.overhead_bytes > MemoryAssumptions().fixed_overhead_bytes


def test_max_batch_is_the_largest_that_fits() -> None:
    model = ServedModel(SHAPES["llama-2-7b"], FP16, 4096)
    best = max_batch(model, 80 * GIB)
    assert memory_breakdown(model, best).per_gpu_bytes <= 80 * GIB
    assert memory_breakdown(model, best + 1).per_gpu_bytes > 80 * GIB
    assert max_batch(model, 8 * GIB) == 0


def test_seventy_b_needs_tensor_parallel_on_80_gb_gpus() -> None:
    model = ServedModel(SHAPES["llama-3-70b"], get_precision("bf16"), 4096)
    assert max_batch(model, 80 * GIB, tensor_parallel=1) == 0
    assert max_batch(model, 80 * GIB, tensor_parallel=2) > 0
    assert max_batch(model, 80 * GIB, tensor_parallel=4) > max_batch(model, 80 * GIB, 2)


def test_context_must_be_positive() -> None:
    with pytest.raises(ValueError, match="context must be a positive"):
        ServedModel(SHAPES["llama-2-7b"], FP16, 0)
