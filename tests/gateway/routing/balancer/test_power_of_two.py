from collections import Counter

from inferplane.gateway.routing.balancer.power_of_two import PowerOfTwo
from tests.gateway.routing.balancer.fleet import REQUEST, replica, replicas


def test_same_seed_same_choices() -> None:
    fleet = replicas(8)
    first, second = PowerOfTwo(seed=7), PowerOfTwo(seed=7)
    assert [first.select(REQUEST, fleet) for _ in range(50)] == [
        second.select(REQUEST, fleet) for _ in range(50)
    ]


def test_never_picks_the_most_loaded_of_many() -> None:
    fleet = [*replicas(4, in_flight=1), replica("hot", in_flight=10)]
    policy = PowerOfTwo(seed=1)
    picks = Counter(policy.select(REQUEST, fleet) for _ in range(400))
    assert "hot" not in picks
    assert len(picks) == 4  # and it spreads over the rest


def test_two_or_fewer_compares_them_all() -> None:
    policy = PowerOfTwo()
    assert policy.select(REQUEST, [replica("a", in_flight=5), replica("b", in_flight=1)]) == "b"
    assert policy.select(REQUEST, [replica("a", state="starting")]) is None


def test_replicas_that_are_not_routable_are_never_picked() -> None:
    fleet = [
        *replicas(3, state="draining"),
        replica("up", in_flight=9),
        replica("up2", in_flight=8),
    ]
    policy = PowerOfTwo(seed=3)
    assert Counter(policy.select(REQUEST, fleet) for _ in range(200)) == {"up2": 200}
    many, big = PowerOfTwo(seed=4), replicas(1000)
    spread = Counter(many.select(REQUEST, big) for _ in range(3000))
    assert len(spread) > 700  # a pair drawn from the whole pool each time (ties go by id)
