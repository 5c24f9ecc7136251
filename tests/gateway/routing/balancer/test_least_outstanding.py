from inferplane.gateway.routing.balancer.least_outstanding import LeastOutstanding
from tests.gateway.routing.balancer.fleet import REQUEST, replica


def test_picks_fewest_outstanding_requests() -> None:
    fleet = [replica("a", in_flight=3), replica("b", in_flight=1), replica("c", in_flight=2)]
    assert LeastOutstanding().select(REQUEST, fleet) == "b"


def test_heavier_replica_takes_more() -> None:
    fleet = [replica("a", in_flight=2), replica("big", in_flight=3, weight=4.0)]
    assert LeastOutstanding().select(REQUEST, fleet) == "big"


def test_skips_an_idle_replica_that_is_draining() -> None:
    fleet = [replica("idle", state="draining"), replica("busy", in_flight=9)]
    assert LeastOutstanding().select(REQUEST, fleet) == "busy"
    assert LeastOutstanding().select(REQUEST, []) is None
