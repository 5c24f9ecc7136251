import pytest

from inferplane.planner.gpus import get_gpu
from inferplane.planner.performance import Replica
from inferplane.planner.precision import get_precision
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel
from inferplane.sim.latency import LinearStepTime, PlannerStepTime, kv_cache_blocks

MODEL = ServedModel(preset_shapes()["llama-3-8b"], get_precision("bf16"), 8192)
H100 = get_gpu("H100-SXM")


def test_a_decode_step_is_the_planners_decode_step() -> None:
    replica = Replica(MODEL, H100, 1)
    model = PlannerStepTime(replica)
    assert model.step_s(0, 32, 1000.0) == replica.decode_step_s(32, 1000.0)


def test_a_prefill_adds_its_time_beyond_the_shared_weight_read() -> None:
    replica = Replica(MODEL, H100, 1)
    model = PlannerStepTime(replica)
    overhead = replica.assumptions.step_overhead_s
    assert model.step_s(2048, 0, 0.0) == pytest.approx(replica.prefill_s(2048) + overhead)
    mixed = model.step_s(2048, 8, 500.0)
    extra = replica.prefill_s(2048) - replica.prefill_s(0)
    assert mixed == pytest.approx(replica.decode_step_s(8, 500.0) + extra)
    assert model.step_s(0, 8, 500.0) < mixed < model.step_s(0, 8, 500.0) + replica.prefill_s(2048)


def test_more_gpus_make_steps_faster() -> None:
    one = PlannerStepTime(Replica(MODEL, H100, 1)).step_s(512, 16, 1000.0)
    two = PlannerStepTime(Replica(MODEL, H100, 2)).step_s(512, 16, 1000.0)
    assert two < one


def test_kv_blocks_fill_what_weights_and_overhead_leave() -> None:
    blocks = kv_cache_blocks(MODEL, H100, 1, 16)
    # 8B bf16 is ~15 GiB of weights on an 80 GiB card; 128 KiB of KV per token
    tokens = blocks * 16
    assert 400_000 < tokens < 520_000
    assert kv_cache_blocks(MODEL, H100, 2, 16) > 2 * blocks  # the weights are split too
    big = ServedModel(preset_shapes()["llama-3-70b"], get_precision("bf16"), 8192)
    with pytest.raises(ValueError, match="no KV cache"):
        kv_cache_blocks(big, H100, 1, 16)


def test_linear_step_time() -> None:
    model = LinearStepTime(base_s=0.01, per_prompt_token_s=0.001, per_decode_s=0.002)
    assert model.step_s(10, 3, 99.0) == pytest.approx(0.01 + 0.01 + 0.006)
