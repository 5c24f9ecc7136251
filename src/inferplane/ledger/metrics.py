"""The ledger's Prometheus metrics, registered on a registry the caller owns.

inference_cost_dollars_total{model,team}: dollars spent, requests and idle replica time alike
(idle rows carry team="_idle"). inference_budget_events_total{scope,period,level}: soft
warnings and hard refusals. Labels stay bounded: no keys or users.
"""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from inferplane.ledger.budgets import Decision
from inferplane.ledger.usage import UsageRecord

IDLE_TEAM = "_idle"


@dataclass(frozen=True)
class CostMetrics:
    cost: Counter
    budget_events: Counter

    def observe(self, record: UsageRecord) -> None:
        team = IDLE_TEAM if record.kind == "idle" else record.team or "none"
        self.cost.labels(model=record.model, team=team).inc(float(record.cost_usd))

    def observe_budget(self, decision: Decision) -> None:
        for warning in decision.warnings:
            b = warning.budget
            self.budget_events.labels(scope=b.scope, period=b.period, level="soft").inc()
        if decision.exceeded is not None:
            b = decision.exceeded.budget
            self.budget_events.labels(scope=b.scope, period=b.period, level="hard").inc()


def register_cost_metrics(registry: CollectorRegistry) -> CostMetrics:
    cost = Counter(
        "inference_cost_dollars",
        "Dollars of GPU time spent, by model and team (idle replica time: team=_idle).",
        ["model", "team"],
        registry=registry,
    )
    budget_events = Counter(
        "inference_budget_events",
        "Budget warnings (level=soft) and refusals (level=hard).",
        ["scope", "period", "level"],
        registry=registry,
    )
    return CostMetrics(cost, budget_events)
