"""Cross-pool routing: which pool each trace request goes to, by the fleet's own rules.

Every request is routed by gateway/routing/rules.Router, the gateway's rules engine, as a chat
request for the model the simulation names: overrides, task and tier matches, canaries,
weighted splits, SLA rules, defaults and aliases decide as they would in the gateway. Trace
requests carry no user, key or tier, so sticky canaries and splits fall back, as the router
does for anonymous callers, to the prompt's first prefix hash: one conversation stays on one
side. A request the rules refuse (404, 403, ...) is refused with the rules' own answer; one
sent to a pool of external endpoints is refused too, since nothing simulates those.

The rules are pure and look at each request alone, so all requests are routed before the
replay starts; the replay then knows every pool that will get traffic.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.config.schema import FleetConfig
from inferplane.gateway.routing.rules import Router
from inferplane.gateway.types import RouteRequest
from inferplane.sim.prompts import Prompts
from inferplane.sim.records import RequestRecord


@dataclass(frozen=True)
class Routes:
    """The pools that get traffic (in order of first use) and how often each reason decided."""

    pools: tuple[str, ...]
    reasons: dict[str, int]


def route_records(
    fleet: FleetConfig,
    model: str,
    records: Sequence[RequestRecord],
    block_tokens: int,
    kv_block_size: int,
) -> Routes:
    """Set each record's pool, or refuse it; the counts of every decision's reason."""
    router = Router(fleet)
    sticky = any(rule.canary is not None or rule.split is not None for rule in fleet.routes)
    prompts = Prompts(block_tokens, kv_block_size) if sticky else None
    pools: dict[str, None] = {}
    reasons: Counter[str] = Counter()
    for record in records:
        hashes = prompts.route_hashes(prompts.runs(record)) if prompts is not None else ()
        request = RouteRequest(model=model, task="chat", est_prompt_tokens=record.prompt_tokens,
                               max_tokens=record.max_tokens, prefix_hashes=hashes)  # fmt: skip
        decision = router.route(request)
        reasons[decision.reason] += 1
        if decision.refusal is not None or decision.pool is None:
            refusal = decision.refusal
            detail = refusal.message if refusal is not None else "no pool"
            status = f"{refusal.status} {refusal.code}" if refusal is not None else "404 no_route"
            record.reject(f"{status}: {detail}")
        elif fleet.pools[decision.pool].is_external:
            record.reject(f"501 not_simulated: pool {decision.pool} fronts external endpoints")
        else:
            record.pool = decision.pool
            pools.setdefault(decision.pool)
    return Routes(tuple(pools), dict(sorted(reasons.items())))
