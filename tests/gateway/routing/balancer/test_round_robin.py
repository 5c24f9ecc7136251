from inferplane.gateway.routing.balancer.round_robin import RoundRobin
from tests.gateway.routing.balancer.fleet import REQUEST, replica, replicas


def test_turns_through_replicas_in_id_order_whatever_the_input_order() -> None:
    policy = RoundRobin()
    fleet = replicas(3)
    picks = [policy.select(REQUEST, fleet if i % 2 else fleet[::-1]) for i in range(6)]
    assert picks == ["r0", "r1", "r2", "r0", "r1", "r2"]


def test_ignores_load_and_skips_unroutable() -> None:
    policy = RoundRobin()
    fleet = [replica("a", in_flight=50), replica("b", state="draining"), replica("c")]
    assert [policy.select(REQUEST, fleet) for _ in range(4)] == ["a", "c", "a", "c"]


def test_none_when_nothing_is_routable() -> None:
    assert RoundRobin().select(REQUEST, [replica("a", state="failed")]) is None
