"""Admission: who is calling (keys), whether they may (model allow-lists, rate limits), and
where the request goes (rules). The decision layer answers with data (a key, a Refusal, a
RouteDecision); this module turns refusals into GatewayErrors and a decision into a Routed.

Order: 401 (no or bad key) before the body is read; then 400 (body), 404 (unknown model),
403 (model not allowed), 429 (rate limit), and the rules' own refusals.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from inferplane.config.schema import FleetConfig
from inferplane.gateway.admission.auth import ApiKey, KeyStore, bearer_token
from inferplane.gateway.admission.limits import RateLimiter
from inferplane.gateway.admission.limits_zone import ZoneView
from inferplane.gateway.admission.refusal import Refusal, model_not_found
from inferplane.gateway.errors import GatewayError
from inferplane.gateway.routing.rules import RouteDecision, Router
from inferplane.gateway.transport.request import ParsedRequest
from inferplane.gateway.types import RouteRequest

Clock = Callable[[], float]


@dataclass(frozen=True)
class Routed:
    pool: str
    rule: str  # the metric label: the rule's name, or the kind of decision (implicit, ...)
    reason: str  # the full reason, for logs
    header: bytes  # x-inferplane-route: "<rule>:<pool>"
    request: RouteRequest


def to_error(refusal: Refusal, headers: Mapping[str, str] | None = None) -> GatewayError:
    return GatewayError(
        refusal.status,
        refusal.message,
        param=refusal.param,
        code=refusal.code,
        headers=headers if headers is not None else refusal.headers(),
        kind=refusal.type,
    )


class Access:
    def __init__(self, router: Router, keys: KeyStore, limiter: RateLimiter) -> None:
        self.router = router
        self.keys = keys
        self.limiter = limiter
        self.models = frozenset(router.models)

    @classmethod
    def from_fleet(
        cls, fleet: FleetConfig, base_dir: Path, clock: Clock, zone: ZoneView | None = None
    ) -> "Access":
        """Rules from the fleet; keys from auth.keys_file (relative to `base_dir`), or dev mode;
        rate-limit buckets in `zone` when the gateway's workers share one."""
        keys_file = fleet.auth.keys_file
        path = None if keys_file is None else base_dir / Path(keys_file).expanduser()
        return cls(Router(fleet), KeyStore.from_file(path), RateLimiter(clock, zone))

    def authenticate(self, headers: Mapping[str, str]) -> ApiKey:
        """The caller's key (dev mode: the anonymous admin); GatewayError 401 otherwise."""
        found = self.keys.authenticate(bearer_token(headers.get("authorization")))
        if isinstance(found, Refusal):
            raise to_error(found)
        return found

    def admit(self, key: ApiKey, parsed: ParsedRequest) -> Routed:
        """Check the model (404, 403), the limits (429) and route; raise GatewayError if refused."""
        if parsed.model not in self.models:
            raise to_error(model_not_found(parsed.model, list(self.models)))
        refusal = self.keys.authorize(key, parsed.model)
        if refusal is not None:
            raise to_error(refusal)
        if key.requests_per_minute is not None or key.tokens_per_minute is not None:
            limit = self.limiter.admit(key, parsed.est_prompt_tokens + parsed.max_tokens)
            if limit.refusal is not None:
                raise to_error(limit.refusal, limit.headers())
        request = route_request(parsed, key)
        return routed(self.router.route(request, key), request)


def routed(decision: RouteDecision, request: RouteRequest) -> Routed:
    if decision.refusal is not None:
        raise to_error(decision.refusal)
    if decision.pool is None:  # the rules always name a pool or refuse; never silently drop
        raise GatewayError(500, f"routing gave no pool ({decision.reason})")
    rule = decision.rule or decision.kind
    header = f"{rule}:{decision.pool}".encode()
    return Routed(decision.pool, rule, decision.reason, header, request)


def route_request(parsed: ParsedRequest, key: ApiKey) -> RouteRequest:
    return RouteRequest(
        model=parsed.model,
        task=parsed.task,
        user=parsed.user,
        key_name=key.name,
        tier=key.tier,
        headers=parsed.headers,
        est_prompt_tokens=parsed.est_prompt_tokens,
        max_tokens=parsed.max_tokens,
        prefix_hashes=parsed.prefix_hashes,
        deadline_ms=parsed.deadline_ms,
    )
