"""Cores per CPU replica and the refusal of oversubscription, on declared hosts."""

from typing import Any

import pytest

from inferplane.config.schema import FleetConfig, Resources
from inferplane.control.actuators.ray_bundle import bundle_for
from inferplane.control.cores import check_cores, cpu_pools, plan_cores, replica_sizes
from inferplane.control.inventory import declared_cpus


def fleet(pools: dict[str, dict[str, Any]], **cpu: Any) -> FleetConfig:
    return FleetConfig.model_validate(
        {
            "models": {"m": {"source": "demo:tiny"}, "big": {"source": "llama-3-8b"}},
            "pools": {name: {"model": "m", **spec} for name, spec in pools.items()},
            "cpu": cpu,
        }
    )


def test_unset_cores_divide_the_host_over_the_pools_maximum_replicas() -> None:
    demo = fleet({"chat": {"replicas": {"min": 2, "max": 4}},
                  "embed": {"replicas": {"min": 1, "max": 2}},
                  "gpu": {"resources": {"gpu": "H100"}},
                  "ext": {"endpoints": ["http://x:1"]}})  # fmt: skip
    assert list(cpu_pools(demo)) == ["chat", "embed"]  # no GPU pool, no external pool
    plan = plan_cores(demo, declared_cpus(16))
    assert plan.reserved == (0,) and len(plan.usable) == 15  # one kept from 4 cores up
    assert plan.sizes == {"chat": 2, "embed": 2}  # 15 // 6 replicas at their maximum
    small = plan_cores(demo, declared_cpus(2))
    assert small.reserved == () and small.sizes == {"chat": 1, "embed": 1}  # at least 1
    one = plan_cores(fleet({"p": {}}), declared_cpus(2))
    assert one.sizes == {"p": 2}  # one replica alone gets every core


def test_a_pool_that_says_takes_its_cores_first() -> None:
    pools = fleet({"wide": {"replicas": {"max": 2}, "resources": {"cpu": 3.5}},
                   "rest": {"replicas": {"max": 3}}}).pools  # fmt: skip
    assert replica_sizes(pools, 15) == {"wide": 4, "rest": 2}  # (15 - 2 x 4) // 3, rounded up


def test_a_fleet_that_needs_more_cores_than_the_host_is_refused_with_the_numbers() -> None:
    demo = fleet({"chat": {"replicas": {"min": 2, "max": 4}, "resources": {"cpu": 2}},
                  "embed": {"replicas": {"min": 1, "max": 2}, "resources": {"cpu": 1}}},
                 reserve=1)  # fmt: skip
    check = check_cores(demo, plan_cores(demo, declared_cpus(4)))
    (problem,) = check.problems
    assert problem.path == "cpu"
    assert "need 5 cores at their minimum (chat 2 x 2, embed 1 x 1)" in problem.message
    assert "the host has 3 for replicas (declared: 4 cores, 1 kept for the platform)" in str(
        problem
    )
    assert "share: true" in problem.message
    assert "would need 10 cores of 3" in check.notes[0]


def test_a_scheduled_minimum_counts_and_one_replica_too_wide_is_named() -> None:
    peak = [{"start": "08:00", "end": "18:00", "min": 3}]
    scheduled = fleet({"p": {"replicas": {"min": 1, "max": 3}, "autoscale": {"schedule": peak},
                             "resources": {"cpu": 1}}})  # fmt: skip
    assert check_cores(scheduled, plan_cores(scheduled, declared_cpus(2))).problems
    wide = fleet({"p": {"replicas": {"min": 0, "max": 1}, "resources": {"cpu": 8}}})
    (problem,) = check_cores(wide, plan_cores(wide, declared_cpus(2))).problems
    assert problem.path == "pools.p.resources.cpu" and "asks 8 cores" in problem.message


def test_a_shared_fleet_passes_with_its_threads_divided() -> None:
    shared = fleet({"p": {"replicas": {"min": 3, "max": 3}, "resources": {"cpu": 8}}}, share=True)
    plan = plan_cores(shared, declared_cpus(2))
    assert plan.sizes == {"p": 2}  # never more threads than the host has cores
    check = check_cores(shared, plan)
    assert check.problems == () and "they share cores, threads divided" in check.notes[0]


def test_the_reserve_must_leave_a_core() -> None:
    with pytest.raises(ValueError, match=r"cpu.reserve \(2\) leaves no core"):
        plan_cores(fleet({"p": {}}, reserve=2), declared_cpus(2))
    assert plan_cores(fleet({"p": {}}, reserve=0), declared_cpus(8)).reserved == ()


def test_every_backend_reads_the_same_cpu() -> None:
    assert Resources.model_validate({"cpus": 4}).cpu == 4  # the older spelling
    assert Resources().cpus == 1.0 and Resources(cpu=3).cpus == 3
    assert bundle_for(Resources(cpu=3)).resources["CPU"] == 3  # Ray's bundle
