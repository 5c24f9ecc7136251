import math
import random
from collections import Counter, deque
from dataclasses import replace

import pytest

from inferplane.gateway.routing.balancer.prefix_affinity import PrefixAffinity
from inferplane.gateway.routing.balancer.round_robin import RoundRobin
from inferplane.gateway.transport.prefix import prefix_hashes
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest
from tests.gateway.routing.balancer.fleet import replica, replicas

SYSTEM = "You are a careful assistant for the billing team. Answer briefly. " * 8


def ask(text: str) -> RouteRequest:
    return RouteRequest(model="chat-small", prefix_hashes=prefix_hashes(text))


def with_load(fleet: list[ReplicaSnapshot], loads: Counter[str]) -> list[ReplicaSnapshot]:
    return [replace(r, in_flight=loads[r.id]) for r in fleet]


def bound(loads: Counter[str], count: int, load_bound: float = 1.25) -> int:
    return math.ceil(load_bound * (sum(loads.values()) + 1) / count)


def test_same_prefix_sticks_to_one_replica_under_the_bound() -> None:
    policy, fleet = PrefixAffinity(), replicas(6)
    picks = {policy.select(ask(SYSTEM + f"question {i}"), fleet) for i in range(50)}
    assert len(picks) == 1


def test_different_openings_spread_over_the_ring() -> None:
    policy, fleet = PrefixAffinity(), replicas(6)
    picks = Counter(policy.select(ask(f"{i:04d} " + SYSTEM), fleet) for i in range(600))
    assert set(picks) == {r.id for r in fleet}
    assert max(picks.values()) < 2 * 600 / 6


def test_a_hot_prefix_spills_once_its_replica_reaches_the_bound() -> None:
    policy, fleet, loads = PrefixAffinity(load_bound=1.25), replicas(4), Counter[str]()
    for i in range(40):  # nothing completes: the hot prefix piles up
        chosen = policy.select(ask(SYSTEM + str(i)), with_load(fleet, loads))
        assert chosen is not None
        assert loads[chosen] + 1 <= bound(loads, 4)
        loads[chosen] += 1
    assert len(loads) == 4
    assert max(loads.values()) <= math.ceil(1.25 * 40 / 4)


def test_1000_requests_with_26_percent_sharing_do_not_overload_one_replica() -> None:
    rng, policy, fleet = random.Random(3), PrefixAffinity(load_bound=1.25), replicas(8)
    loads, running, hot_homes = Counter[str](), deque[str](), Counter[str]()
    for i in range(1000):
        if len(running) >= 48:  # 48 in flight at a time: the oldest finishes
            loads[running.popleft()] -= 1
        shared = rng.random() < 0.26
        text = (SYSTEM if shared else f"user {i} asks: " + SYSTEM[::-1]) + f" turn {i}"
        chosen = policy.select(ask(text), with_load(fleet, loads))
        assert chosen is not None
        assert loads[chosen] + 1 <= bound(loads, 8), f"request {i} overloads {chosen}"
        loads[chosen] += 1
        running.append(chosen)
        hot_homes[chosen] += shared
    # the shared prefix still lives on a few replicas, so their caches keep hitting it
    top_two = sum(count for _, count in hot_homes.most_common(2))
    assert top_two > 0.6 * sum(hot_homes.values())


def test_round_robin_scatters_the_shared_prefix_for_comparison() -> None:
    policy, fleet = RoundRobin(), replicas(8)
    homes = Counter(policy.select(ask(SYSTEM + str(i)), fleet) for i in range(80))
    assert len(homes) == 8


def test_a_conversation_follows_its_spilled_replica() -> None:
    policy, fleet = PrefixAffinity(load_bound=1.0), replicas(3)
    primary = policy.select(ask(SYSTEM + "probe"), fleet)
    assert primary is not None
    busy = Counter({primary: 4})
    turn_one = SYSTEM + "user: my invoice is wrong. " * 3
    spilled = policy.select(ask(turn_one), with_load(fleet, busy))
    assert spilled != primary
    turn_two = turn_one + "assistant: which one? user: the March invoice, number 4411. " * 2
    assert policy.select(ask(turn_two), fleet) == spilled  # primary is idle again, yet


def test_removing_a_replica_moves_only_its_prefixes() -> None:
    fleet, texts = replicas(5), [f"{i:05d}" + SYSTEM for i in range(300)]
    first, second = PrefixAffinity(memory=1), PrefixAffinity(memory=1)  # ring placement only
    before = [first.select(ask(t), fleet) for t in texts]
    after = [second.select(ask(t), fleet[:-1]) for t in texts]
    moved = [b for b, a in zip(before, after, strict=True) if a != b]
    assert set(moved) == {"r4"}


def test_heavier_replica_owns_more_of_the_ring() -> None:
    policy = PrefixAffinity()
    fleet = [replica("big", weight=3.0), replica("small")]
    picks = Counter(policy.select(ask(f"{i:05d}" + SYSTEM), fleet) for i in range(400))
    assert picks["big"] > 2 * picks["small"]


def test_short_prompts_and_unroutable_replicas() -> None:
    policy = PrefixAffinity()
    fleet = [replica("a", in_flight=3), replica("b", in_flight=1), replica("c", state="failed")]
    assert policy.select(ask("hi"), fleet) == "b"  # no full block: least loaded
    assert policy.select(ask(SYSTEM), [replica("a", state="draining")]) is None


def test_memory_is_bounded() -> None:
    policy, fleet = PrefixAffinity(memory=100), replicas(2)
    for i in range(50):
        policy.select(ask(f"{i:05d}" + SYSTEM), fleet)
    assert len(policy._seen) == 100


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="load_bound >= 1"):
        PrefixAffinity(load_bound=0.5)


def test_a_new_prefix_goes_to_its_ring_owner_only_while_it_is_about_as_idle_as_any() -> None:
    fleet = replicas(4)
    owner = PrefixAffinity().select(ask("opening " + SYSTEM), fleet)
    assert owner is not None
    one_more = Counter({r.id: 3 for r in fleet if r.id != owner}) + Counter({owner: 4})
    assert PrefixAffinity().select(ask("opening " + SYSTEM), with_load(fleet, one_more)) == owner
    two_more = Counter({owner: 2})  # the others are idle: nothing cached is worth a queue
    moved = PrefixAffinity().select(ask("opening " + SYSTEM), with_load(fleet, two_more))
    assert moved != owner
    assert moved == min(r.id for r in fleet if r.id != owner)  # least loaded, then by id


def test_nothing_shared_routes_like_least_outstanding_under_load() -> None:
    rng, fleet = random.Random(5), replicas(8)
    loads = Counter({r.id: rng.randrange(10) for r in fleet})
    policy = PrefixAffinity()
    for i in range(200):
        snapshots = with_load(fleet, loads)
        chosen = policy.select(ask(f"unique {i} " + SYSTEM), snapshots)
        assert chosen is not None
        assert loads[chosen] <= min(loads[r.id] for r in fleet) + 1
        loads[chosen] += 1
        loads[rng.choice([rid for rid, load in loads.items() if load > 0])] -= 1  # one finishes
