import json

from inferplane.planner.gpus import get_gpu
from inferplane.planner.performance import Workload
from inferplane.planner.plan import make_plan
from inferplane.planner.precision import get_precision
from inferplane.planner.prices import provider_prices
from inferplane.planner.recommend import PlanRequest
from inferplane.planner.report import plan_to_dict
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel


def test_plan_as_json_data() -> None:
    model = ServedModel(preset_shapes()["llama-2-7b"], get_precision("fp16"), 4096)
    gpus = (get_gpu("L4"), get_gpu("T4"))
    request = PlanRequest(model, Workload(2.0, 512, 256, 30.0), gpus, provider_prices("runpod"))
    data = json.loads(json.dumps(plan_to_dict(make_plan(request, batch=1))))
    assert data["kv_cache_bytes"] == 2_147_483_648
    assert data["total_bytes"] > data["weights_bytes"] + data["kv_cache_bytes"]
    first = data["options"][0]
    for key in ("gpu", "gpus_per_replica", "replicas", "price_per_hour", "cost_per_million_tokens"):
        assert key in first
    assert first["efficiency"] == "assumed"
    assert data["fits"] and data["problem"] is None
