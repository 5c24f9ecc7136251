import pytest

from inferplane.config.schema import Balancing
from inferplane.gateway.routing.balancer import POLICIES, build_policy, policy_from_config
from inferplane.gateway.routing.balancer.prefix_affinity import PrefixAffinity
from tests.gateway.routing.balancer.fleet import REQUEST, replicas


def test_every_config_name_builds_a_working_policy() -> None:
    for name in POLICIES:
        policy = build_policy(name)
        assert policy.name == name
        assert policy.select(REQUEST, replicas(3)) in {"r0", "r1", "r2"}


def test_each_build_is_a_fresh_object() -> None:
    assert build_policy("round_robin") is not build_policy("round_robin")


def test_unknown_name_and_bad_options_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="use one of round_robin"):
        build_policy("random")
    with pytest.raises(ValueError, match="bad options"):
        build_policy("round_robin", load_bound=2)


def test_from_config_passes_the_load_bound() -> None:
    policy = policy_from_config(Balancing(policy="prefix_affinity", load_bound=1.5))
    assert isinstance(policy, PrefixAffinity)
    assert policy.load_bound == 1.5
    assert policy_from_config(Balancing(policy="power_of_two")).name == "power_of_two"
