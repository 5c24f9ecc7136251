"""Balancing: pick one replica of a pool for a request, by a named policy over snapshots."""

from inferplane.gateway.routing.balancer.base import Policy, least_loaded, routable
from inferplane.gateway.routing.balancer.registry import POLICIES, build_policy, policy_from_config

__all__ = ["POLICIES", "Policy", "build_policy", "least_loaded", "policy_from_config", "routable"]
