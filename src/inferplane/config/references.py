"""Checks across sections of a fleet file: every name a section uses must exist."""

from inferplane.config.errors import ConfigIssue
from inferplane.config.schema import FleetConfig, RouteRule


def check_references(fleet: FleetConfig) -> list[ConfigIssue]:
    issues = _pool_models(fleet)
    pool_names = set(fleet.pools)
    for index, rule in enumerate(fleet.routes):
        issues.extend(_rule_pools(rule, f"routes[{index}]", pool_names))
    issues.extend(_route_order(fleet.routes))
    return issues


def _pool_models(fleet: FleetConfig) -> list[ConfigIssue]:
    issues = []
    for name, pool in fleet.pools.items():
        if not pool.is_external and pool.model not in fleet.models:
            known = ", ".join(sorted(fleet.models)) or "none"
            issues.append(
                ConfigIssue(
                    f"pools.{name}.model",
                    f"unknown model {pool.model!r}: define it under models (defined: {known}) "
                    "or give the pool endpoints to front an external engine",
                )
            )
    return issues


def _rule_pools(rule: RouteRule, path: str, pools: set[str]) -> list[ConfigIssue]:
    named: list[tuple[str, str]] = []
    if rule.pool is not None:
        named.append((f"{path}.pool", rule.pool))
    if rule.canary is not None:
        named.append((f"{path}.canary.pool", rule.canary.pool))
    if rule.split is not None:
        named.extend((f"{path}.split.weights.{pool}", pool) for pool in rule.split.weights)
    known = ", ".join(sorted(pools)) or "none"
    return [
        ConfigIssue(where, f"unknown pool {pool!r} (defined: {known})")
        for where, pool in named
        if pool not in pools
    ]


def _route_order(routes: tuple[RouteRule, ...]) -> list[ConfigIssue]:
    issues = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(routes):
        if rule.name in seen:
            issues.append(
                ConfigIssue(
                    f"routes[{index}].name",
                    f"duplicate rule name {rule.name!r} (also routes[{seen[rule.name]}])",
                )
            )
        seen.setdefault(rule.name, index)
    for index, rule in enumerate(routes[:-1]):
        if rule.is_catch_all:
            issues.append(
                ConfigIssue(
                    f"routes[{index}]",
                    f"rule {rule.name!r} matches every request, so the rules after it never "
                    "apply: move it last or give it a match",
                )
            )
    return issues
