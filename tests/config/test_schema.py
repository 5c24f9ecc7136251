import pytest
from pydantic import ValidationError

from inferplane.config.schema import Autoscale, PoolSpec, ReplicaBounds, Resources, RouteRule


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
