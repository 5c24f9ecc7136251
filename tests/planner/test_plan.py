import pytest

from inferplane.planner.gpus import get_gpu, gpu_catalog
from inferplane.planner.performance import Workload
from inferplane.planner.plan import make_plan, smallest_fit
from inferplane.planner.precision import get_precision
from inferplane.planner.prices import provider_prices
from inferplane.planner.recommend import PlanRequest
from inferplane.planner.shapes import preset_shapes
from inferplane.planner.vram import ServedModel

SHAPES = preset_shapes()


def _request(name: str, dtype: str, context: int, gpus: tuple[str, ...], most: int) -> PlanRequest:
    model = ServedModel(SHAPES[name], get_precision(dtype), context)
    return PlanRequest(
        model,
        Workload(1.0, 512, 256, 3.0),
        tuple(get_gpu(gpu) for gpu in gpus),
        provider_prices("runpod"),
        max_gpus_per_replica=most,
    )


def test_impossible_ask_names_the_smallest_option_that_fits() -> None:
    plan = make_plan(_request("llama-3.1-405b", "fp32", 131072, ("T4",), 1), batch=1)
    assert not plan.fits
    message = plan.problem()
    assert message is not None
    assert "llama-3.1-405b at fp32 with a 131072-token context" in message
    assert "fits no replica of up to 1 x T4" in message
    # fp32 405B exceeds even 8 x B200; at bf16 eight H200s are the least memory that holds it.
    assert "The smallest option that fits: 8 x H200 at bf16 with a 131072-token context" in message


def test_smallest_fit_prefers_the_asked_format_on_a_bigger_gpu() -> None:
    found = smallest_fit(_request("llama-3-8b", "bf16", 8192, ("T4",), 1))
    assert found is not None
    assert (found.gpu, found.gpus_per_replica, found.dtype) == (
        "A10G",
        1,
        "bf16",
    )  # 22.5 GiB: less than 2 x T4 or one L4


def test_a_fitting_plan_has_no_problem_and_lists_assumptions() -> None:
    request = _request("llama-3-8b", "bf16", 4096, tuple(gpu_catalog()), 8)
    plan = make_plan(request, batch=4, assumptions=("prices: test",))
    assert plan.fits and plan.problem() is None and plan.suggestion is None
    assert plan.breakdown.kv_cache_bytes == 4 * 2 * 32 * 8 * 128 * 4096 * 2
    text = " | ".join(plan.assumptions)
    for needle in ("framework overhead", "utilisation cap", "M/M/c", "prices: test"):
        assert needle in text


def test_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch must be at least 1"):
        make_plan(_request("llama-3-8b", "bf16", 4096, ("L4",), 1), batch=0)
