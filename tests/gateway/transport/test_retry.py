from inferplane.gateway.transport.retry import RetryBudget, RetryConfig


def test_budget_spends_refills_with_time_and_requests() -> None:
    now = [0.0]
    budget = RetryBudget(RetryConfig(ratio=0.5, min_per_s=1.0, burst=2.0), lambda: now[0])
    assert budget.try_spend() and budget.try_spend()
    assert not budget.try_spend()
    budget.on_request()
    budget.on_request()
    assert budget.try_spend() and not budget.try_spend()
    now[0] = 1.0
    assert budget.try_spend() and not budget.try_spend()
