from dataclasses import replace

import pytest

from inferplane.planner.gpus import get_gpu, gpu_catalog
from inferplane.planner.performance import Workload
from inferplane.planner.precision import get_precision
from inferplane.planner.prices import provider_prices
from inferplane.planner.recommend import PlanRequest, evaluate, rank_options
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel

SHAPES = preset_shapes()
WORKLOAD = Workload(500_000 / 86_400, 512, 256, 3.0)


def _request(name: str = "llama-3-70b", **changes: object) -> PlanRequest:
    model = ServedModel(SHAPES[name], get_precision("bf16"), 4096)
    base = PlanRequest(model, WORKLOAD, tuple(gpu_catalog().values()), provider_prices("runpod"))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_seventy_b_on_80_gb_gpus_is_tensor_parallel() -> None:
    request = _request(gpus=(get_gpu("H100-SXM"), get_gpu("A100-80GB")))
    options = rank_options(request)
    assert options and all(option.gpus_per_replica >= 2 for option in options)
    assert evaluate(request, get_gpu("H100-SXM"), 1) is None


def test_ranking_puts_targets_met_first_then_cheapest_per_token() -> None:
    options = rank_options(_request())
    met = [option for option in options if option.meets_target]
    assert met and options[: len(met)] == met
    costs = [option.cost_per_million_tokens for option in met]
    assert costs == sorted(costs)  # type: ignore[type-var]
    assert all(option.p95_latency_s <= 3.0 for option in met)


def test_costs_follow_from_prices_and_tokens() -> None:
    best = rank_options(_request())[0]
    hourly = provider_prices("runpod")(best.gpu, "on-demand")
    assert hourly is not None
    assert best.price_per_hour is not None
    assert best.price_per_hour == pytest.approx(hourly * best.total_gpus)
    tokens_per_hour = WORKLOAD.requests_per_s * 3600 * 768
    assert best.cost_per_million_tokens == pytest.approx(
        best.price_per_hour / tokens_per_hour * 1e6
    )
    assert best.costs["spot"].price_per_hour < best.costs["on-demand"].price_per_hour


def test_ranking_by_spot_capacity() -> None:
    options = rank_options(_request(capacity="spot"))
    assert options[0].cost is not None and options[0].cost.capacity == "spot"


def test_unpriced_gpus_rank_after_priced_ones() -> None:
    options = rank_options(_request("llama-3-8b", gpus=(get_gpu("T4"), get_gpu("L4"))))
    assert [option.price_per_hour is None for option in options][-1]
    assert options[0].gpu == "L4"


def test_no_workload_rate_prices_the_capacity_of_one_fleet() -> None:
    idle = Workload(0.0, 512, 256, None)
    options = rank_options(_request("llama-3-8b", workload=idle, gpus=(get_gpu("L4"),)))
    assert options[0].replicas == 1 and options[0].cost_per_million_tokens is not None


def test_tensor_parallel_respects_head_counts() -> None:
    # qwen2.5-0.5b has 14 heads: 4 and 8 do not divide them.
    options = rank_options(_request("qwen2.5-0.5b", gpus=(get_gpu("L4"),)))
    assert {option.gpus_per_replica for option in options} == {1, 2}


def test_bad_capacity() -> None:
    with pytest.raises(ValueError, match="use one of on-demand"):
        _request(capacity="preemptible")
