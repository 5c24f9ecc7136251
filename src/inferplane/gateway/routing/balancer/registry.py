"""Balancing policies by the names the fleet file uses, built with their options."""

from collections.abc import Callable
from typing import Any

from inferplane.config.schema import Balancing
from inferplane.gateway.routing.balancer.base import Policy
from inferplane.gateway.routing.balancer.least_outstanding import LeastOutstanding
from inferplane.gateway.routing.balancer.power_of_two import PowerOfTwo
from inferplane.gateway.routing.balancer.predicted_work import PredictedWork
from inferplane.gateway.routing.balancer.prefix_affinity import PrefixAffinity
from inferplane.gateway.routing.balancer.round_robin import RoundRobin
from inferplane.gateway.routing.balancer.warmth import Warmth

POLICIES: dict[str, Callable[..., Policy]] = {
    "round_robin": RoundRobin,
    "least_outstanding": LeastOutstanding,
    "power_of_two": PowerOfTwo,
    "predicted_work": PredictedWork,
    "prefix_affinity": PrefixAffinity,
    "warmth": Warmth,
}


def build_policy(name: str, **options: Any) -> Policy:
    """A fresh policy object; each pool should get its own (counters and memory are per pool)."""
    factory = POLICIES.get(name)
    if factory is None:
        raise ValueError(f"unknown balancing policy {name!r}: use one of {', '.join(POLICIES)}")
    try:
        return factory(**options)
    except TypeError as error:
        raise ValueError(f"bad options for balancing policy {name!r}: {error}") from error


def policy_from_config(balancing: Balancing, seed: int = 0) -> Policy:
    """The policy a fleet file's `balancing` section asks for, given only the options it takes."""
    if balancing.policy == "prefix_affinity":
        return build_policy(balancing.policy, load_bound=balancing.load_bound)
    if balancing.policy == "power_of_two":
        return build_policy(balancing.policy, seed=seed)
    return build_policy(balancing.policy)
