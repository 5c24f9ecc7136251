import pytest

from inferplane.config.loader import parse_fleet
from inferplane.config.schema import ModelSpec
from inferplane.control.demand import fleet_demands, served_model
from inferplane.planner.precision import get_precision
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel, memory_breakdown

FLEET = """
models:
  llama: {source: llama-3-8b, dtype: bfloat16, max_model_len: 8192}
  tiny: {source: demo:tiny}
pools:
  chat: {model: llama, replicas: {min: 1, max: 3}, resources: {gpu: H100}}
  big: {model: llama, replicas: {min: 1, max: 1}, resources: {gpu: H100, count: 2}}
  sliced: {model: tiny, replicas: {min: 0, max: 2}, resources: {mig: 1g.10gb}}
  cpu: {model: tiny}
  outside: {model: x, endpoints: ["http://127.0.0.1:9"]}
"""


def test_fleet_demands_follow_the_vram_formula() -> None:
    demands = fleet_demands(parse_fleet(FLEET), batch=4)
    names = [d.name for d in demands]
    assert names == ["chat-0", "chat-1", "chat-2", "big-0", "sliced-0", "sliced-1", "cpu-0"]
    model = ServedModel(preset_shapes()["llama-3-8b"], get_precision("bf16"), 8192)
    assert demands[0].need_bytes == memory_breakdown(model, 4).per_gpu_bytes
    assert demands[3].need_bytes == memory_breakdown(model, 4, 2).per_gpu_bytes
    assert (demands[3].gpus, demands[3].gpu_kind) == (2, "H100")
    assert (demands[4].mig, demands[4].gpus, demands[4].gpu_kind) == ("1g.10gb", 1, None)
    assert demands[4].need_bytes > 0
    assert not demands[-1].uses_gpu and demands[-1].need_bytes == 0


def test_min_counts_and_batch_validation() -> None:
    fleet = parse_fleet(FLEET)
    assert [d.name for d in fleet_demands(fleet, count="min")] == ["chat-0", "big-0", "cpu-0"]
    with pytest.raises(ValueError, match="batch"):
        fleet_demands(fleet, batch=0)


def test_dtype_and_quantization() -> None:
    auto = served_model("m", ModelSpec(source="llama-3-8b"))
    assert (auto.precision.name, auto.context) == ("bf16", 4096)
    int8 = served_model("m", ModelSpec(source="llama-3-8b", quantization="int8"))
    assert int8.precision.name == "int8"
