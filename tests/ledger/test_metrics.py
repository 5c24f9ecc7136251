from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest

from inferplane.ledger.budgets import Budget, BudgetBook
from inferplane.ledger.metrics import register_cost_metrics
from tests.ledger.conftest import RecordFactory


def test_cost_counter_renders(make_record: RecordFactory) -> None:
    registry = CollectorRegistry()
    metrics = register_cost_metrics(registry)
    metrics.observe(make_record("r1", cost_micro_usd=1_250_000))
    metrics.observe(make_record("r2", cost_micro_usd=250_000))
    metrics.observe(make_record("i1", kind="idle", team="", key="", cost_micro_usd=500_000))
    text = generate_latest(registry).decode()
    assert "# TYPE inference_cost_dollars_total counter" in text
    assert 'inference_cost_dollars_total{model="chat-small",team="ml"} 1.5' in text
    assert 'inference_cost_dollars_total{model="chat-small",team="_idle"} 0.5' in text


def test_budget_events_render() -> None:
    registry = CollectorRegistry()
    metrics = register_cost_metrics(registry)
    budget = Budget("team", "ml", "day", soft_usd=0.0, hard_usd=1.0)
    now = datetime(2026, 11, 5, tzinfo=UTC).timestamp()
    book = BudgetBook([budget], lambda: now)
    metrics.observe_budget(book.admit("r1", "k", "ml"))
    book.settle("r1", 2_000_000)
    metrics.observe_budget(book.admit("r2", "k", "ml"))
    text = generate_latest(registry).decode()
    assert 'inference_budget_events_total{level="soft",period="day",scope="team"} 1.0' in text
    assert 'inference_budget_events_total{level="hard",period="day",scope="team"} 1.0' in text
