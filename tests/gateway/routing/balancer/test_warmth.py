from inferplane.gateway.routing.balancer.warmth import Warmth
from tests.gateway.routing.balancer.fleet import REQUEST, replica


def test_prefers_hot_over_a_less_loaded_warm_replica() -> None:
    fleet = [replica("warm", tier="warm"), replica("hot", tier="hot", in_flight=5)]
    assert Warmth().select(REQUEST, fleet) == "hot"


def test_warm_before_cold_and_least_loaded_within_a_tier() -> None:
    fleet = [
        replica("cold", tier="cold"),
        replica("warm-busy", tier="warm", in_flight=3),
        replica("warm-idle", tier="warm", in_flight=1),
        replica("hot-asleep", tier="hot", state="sleeping"),
    ]
    assert Warmth().select(REQUEST, fleet) == "warm-idle"


def test_none_without_ready_replicas() -> None:
    assert Warmth().select(REQUEST, [replica("a", state="sleeping")]) is None
