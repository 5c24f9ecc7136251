"""Routing rules: which pool serves a request, and the reason, from the fleet file's routes.

Rules are tried in order and the first that applies wins. A rule applies when every condition
in its `match` holds (header present, task, model, tier, deadline below
max_latency_ms_below), the caller's key is allowed when the rule has allow_keys, and its
target serves the requested model. The tier is the key's; without a key (the simulator),
the request's.

- Model names are aliases. A request's model must be a model of the fleet, the model of a
  pool (external pools name theirs), or a name some rule's match.model maps; otherwise the
  decision is a 404 refusal.
- A rule whose match names a model maps that name to its target, whatever model the target
  runs: that is how `gpt-4o` can mean `chat-small` and how a model is swapped by config.
- A rule that names no model only applies to requests its target can serve: a plain pool
  must run exactly the requested model; a canary or split pool may run a variant of it (a
  fleet model with the same source, such as another version or quantization), since trying
  a variant on some traffic is what canaries and A/B splits are for. Otherwise the rule is
  skipped, so "default: chat-primary" never swallows requests for the embedding model.
- Override (match.header with no pool): the header's value names a pool, or a model that a
  pool runs. Only admin keys and keys whose name or team is in allow_keys may use it; for
  others the decision is a 403 refusal, and an unknown target is a 400.
- Canary: a stable hash of the user (or key) puts `percent` of users in the canary for good;
  the others fall through to the next rules. Splits hash the same way into weighted shares.
  Each rule salts the hash with its name, and raising a canary's percent only adds users.
- If no rule applies, a pool running exactly the requested model serves it ("implicit:POOL");
  if there is none, the decision is a 404 refusal naming the model.
- A rollout (set at runtime by the control plane with `set_rollout`) diverts a sticky share of
  the users whose request the rules sent to a pool to that pool's canary
  ("rollout:CANARY(25%)"), whatever rule chose the pool; share 0 ends it.

Reasons are short and stable ("canary:chat-canary(5%)", "tier:premium", "default"), made of
names from the fleet file only, so they are safe as a metric label and a response header.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from inferplane.config.schema import Canary, FleetConfig, RouteMatch, RouteRule, Split
from inferplane.gateway.admission.auth import ApiKey
from inferplane.gateway.admission.refusal import Refusal, bad_request, forbidden, model_not_found
from inferplane.gateway.routing.hashing import BUCKETS, stable_bucket
from inferplane.gateway.types import RouteRequest


@dataclass(frozen=True)
class RouteDecision:
    pool: str | None
    rule: str | None
    reason: str
    refusal: Refusal | None = None

    @property
    def kind(self) -> str:
        """The reason's first word (override, task, canary, ...): a bounded metric label."""
        return self.reason.partition(":")[0]


class Router:
    """Decides pools for requests from one fleet file; pure: no I/O, no clock."""

    def __init__(self, fleet: FleetConfig) -> None:
        self._fleet = fleet
        self._pool_model = {name: pool.model for name, pool in fleet.pools.items()}
        self._sources = {name: model.source for name, model in fleet.models.items()}
        aliases = {r.match.model for r in fleet.routes if r.match and r.match.model}
        self.models = sorted({*fleet.models, *self._pool_model.values(), *aliases})
        self._uses_headers = any(r.match and r.match.header for r in fleet.routes)
        self._rollouts: dict[str, tuple[str, float]] = {}  # pool -> (canary pool, percent)

    def set_rollout(self, pool: str, canary: str, percent: float) -> None:
        """Send `percent` of `pool`'s users to `canary` instead (the control plane's rollout)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"a rollout share is a percentage in 0..100, got {percent}")
        if percent == 0:
            self._rollouts.pop(pool, None)
        else:
            self._rollouts[pool] = (canary, percent)

    def route(self, req: RouteRequest, key: ApiKey | None = None) -> RouteDecision:
        decision = self._route(req, key)
        if self._rollouts and decision.pool in self._rollouts:
            return self._divert(decision, req, key)
        return decision

    def _route(self, req: RouteRequest, key: ApiKey | None) -> RouteDecision:
        if req.model not in self.models:
            return _refused("unknown-model", model_not_found(req.model, self.models))
        headers = _lowered(req.headers) if self._uses_headers else {}
        for rule in self._fleet.routes:
            decision = self._apply(rule, req, key, headers)
            if decision is not None:
                return decision
        return self._implicit(req.model)

    def _divert(
        self, decision: RouteDecision, req: RouteRequest, key: ApiKey | None
    ) -> RouteDecision:
        pool = decision.pool or ""
        canary, percent = self._rollouts[pool]
        if _who_bucket(f"rollout\x00{pool}", "user", req, key) >= percent * BUCKETS / 100:
            return decision
        return RouteDecision(canary, None, f"rollout:{canary}({percent:g}%)")

    def _apply(
        self, rule: RouteRule, req: RouteRequest, key: ApiKey | None, headers: Mapping[str, str]
    ) -> RouteDecision | None:
        match = rule.match
        if match is not None and not _holds(match, req, key, headers):
            return None
        if rule.is_override and match is not None and match.header is not None:
            return self._override(rule, match.header, key, headers)
        if rule.allow_keys is not None and not _permitted(rule, key):
            return None
        return self._target(rule, req, key)

    def _target(
        self, rule: RouteRule, req: RouteRequest, key: ApiKey | None
    ) -> RouteDecision | None:
        if rule.canary is not None:
            return self._canary(rule, rule.canary, req, key)
        if rule.split is not None:
            return self._split(rule, rule.split, req, key)
        if rule.pool is None or not self._serves(rule, rule.pool, req.model, variants=False):
            return None
        return RouteDecision(rule.pool, rule.name, _condition_reason(rule.match))

    def _override(
        self, rule: RouteRule, header: str, key: ApiKey | None, headers: Mapping[str, str]
    ) -> RouteDecision:
        if not _permitted(rule, key):
            who = "this key" if key is None else f"key {key.name!r}"
            refusal = forbidden(f"{who} may not use the {header} header", param=header)
            return _refused("override-denied", refusal, rule.name)
        target = headers[header.lower()].strip()
        pool = target if target in self._pool_model else self._pool_for(target)
        if pool is None:
            advice = f"{header} names no pool or served model: {target!r}"
            return _refused("override-unknown", bad_request(advice, param=header), rule.name)
        return RouteDecision(pool, rule.name, f"override:{pool}")

    def _canary(
        self, rule: RouteRule, canary: Canary, req: RouteRequest, key: ApiKey | None
    ) -> RouteDecision | None:
        if not self._serves(rule, canary.pool, req.model, variants=True):
            return None
        if _bucket(rule, canary.sticky_by, req, key) >= canary.percent * BUCKETS / 100:
            return None  # not in the canary: the next rules decide
        return RouteDecision(canary.pool, rule.name, f"canary:{canary.pool}({canary.percent:g}%)")

    def _split(
        self, rule: RouteRule, split: Split, req: RouteRequest, key: ApiKey | None
    ) -> RouteDecision | None:
        if not all(self._serves(rule, pool, req.model, variants=True) for pool in split.weights):
            return None
        total = sum(split.weights.values())
        pool = _pick(split.weights, _bucket(rule, split.sticky_by, req, key) * total / BUCKETS)
        share = split.weights[pool] * 100 / total
        return RouteDecision(pool, rule.name, f"split:{pool}({share:.3g}%)")

    def _serves(self, rule: RouteRule, pool: str, model: str, *, variants: bool) -> bool:
        if rule.match is not None and rule.match.model is not None:
            return True  # the rule maps this model name to the pool explicitly
        runs = self._pool_model[pool]
        if runs == model:
            return True
        source = self._sources.get(model)
        return variants and source is not None and self._sources.get(runs) == source

    def _pool_for(self, model: str) -> str | None:
        return next((pool for pool, runs in self._pool_model.items() if runs == model), None)

    def _implicit(self, model: str) -> RouteDecision:
        pool = self._pool_for(model)
        if pool is not None:
            return RouteDecision(pool, None, f"implicit:{pool}")
        message = f"no route serves the model {model!r}: add a pool for it or a rule that maps it"
        return _refused("no-route", Refusal(404, "invalid_request_error", "no_route", message))


def _refused(reason: str, refusal: Refusal, rule: str | None = None) -> RouteDecision:
    return RouteDecision(None, rule, reason, refusal)


def _pick(weights: Mapping[str, float], point: float) -> str:
    """The pool whose share of [0, total) holds `point`, shares in the file's order."""
    for pool, weight in weights.items():
        if point < weight:
            return pool
        point -= weight
    return list(weights)[-1]  # float rounding at the very top of the range


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _holds(
    match: RouteMatch, req: RouteRequest, key: ApiKey | None, headers: Mapping[str, str]
) -> bool:
    tier = key.tier if key is not None else req.tier
    checks = (
        match.header is None or bool(headers.get(match.header.lower(), "").strip()),
        match.task is None or match.task == req.task,
        match.model is None or match.model == req.model,
        match.tier is None or match.tier == tier,
        match.max_latency_ms_below is None
        or (req.deadline_ms is not None and req.deadline_ms < match.max_latency_ms_below),
    )
    return all(checks)


def _permitted(rule: RouteRule, key: ApiKey | None) -> bool:
    if key is None:
        return False
    return key.admin or bool(rule.allow_keys and {key.name, key.team} & set(rule.allow_keys))


def _bucket(rule: RouteRule, sticky_by: str, req: RouteRequest, key: ApiKey | None) -> int:
    """Where this user (or key) falls in [0, BUCKETS) for this rule: the same every time."""
    return _who_bucket(rule.name, sticky_by, req, key)


def _who_bucket(salt: str, sticky_by: str, req: RouteRequest, key: ApiKey | None) -> int:
    key_name = req.key_name or (key.name if key is not None else None)
    who = (req.user or key_name) if sticky_by == "user" else (key_name or req.user)
    if who is None:  # anonymous: at least keep one conversation on one side
        who = f"prefix:{req.prefix_hashes[0]}" if req.prefix_hashes else ""
    return stable_bucket(f"{salt}\x00{who}")


def _condition_reason(match: RouteMatch | None) -> str:
    if match is None:
        return "default"
    if match.header is not None:
        return f"header:{match.header}"
    if match.task is not None:
        return f"task:{match.task}"
    if match.model is not None:
        return f"model:{match.model}"
    if match.max_latency_ms_below is not None:
        return f"sla:<{match.max_latency_ms_below}ms"
    return f"tier:{match.tier}" if match.tier is not None else "default"
