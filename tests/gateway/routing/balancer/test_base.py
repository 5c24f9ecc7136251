from inferplane.gateway.routing.balancer.base import least_loaded, routable
from tests.gateway.routing.balancer.fleet import replica


def test_routable_keeps_only_ready_replicas() -> None:
    states = ["ready", "starting", "draining", "sleeping", "failed"]
    fleet = [replica(state, state=state) for state in states]
    assert [r.id for r in routable(fleet)] == ["ready"]


def test_least_loaded_scales_by_weight_then_breaks_ties() -> None:
    small = replica("small", in_flight=2)
    big = replica("big", in_flight=3, weight=2.0)
    assert least_loaded([small, big]) == big
    assert least_loaded([replica("b", kv_usage=0.5), replica("a", kv_usage=0.5)]).id == "a"  # type: ignore[union-attr]
    assert least_loaded([]) is None


def test_scraped_queue_counts_when_larger_than_own_in_flight() -> None:
    busy_elsewhere = replica("x", in_flight=1, running=4, waiting=3)
    assert least_loaded([busy_elsewhere, replica("y", in_flight=2)]).id == "y"  # type: ignore[union-attr]
