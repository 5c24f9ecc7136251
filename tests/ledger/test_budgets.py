import random
from datetime import UTC, datetime

import pytest

from inferplane.ledger.budgets import Budget, BudgetBook, period_bounds


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _ts(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=UTC).timestamp()


NOON = _ts(2026, 11, 5, 12)


def test_period_bounds() -> None:
    assert period_bounds("day", NOON) == (_ts(2026, 11, 5), _ts(2026, 11, 6))
    assert period_bounds("month", NOON) == (_ts(2026, 11, 1), _ts(2026, 12, 1))
    assert period_bounds("month", _ts(2026, 12, 31, 23)) == (_ts(2026, 12, 1), _ts(2027, 1, 1))


def test_hard_limit_at_the_boundary() -> None:
    budget = Budget("team", "ml", "day", hard_usd=1.0)
    book = BudgetBook([budget], FakeClock(NOON))
    book.seed(budget, 999_999)  # one micro-dollar below the limit
    assert book.admit("r1", "key-a", "ml").allowed
    book.settle("r1", 1)
    refused = book.admit("r2", "key-a", "ml")
    assert not refused.allowed and refused.exceeded is not None
    assert refused.headers() == {"Retry-After": str(12 * 3600)}
    body = refused.exceeded.body()["error"]
    assert body["code"] == "budget_exceeded" and body["type"] == "budget_exceeded"
    assert "team 'ml' spent $1.00 of its $1.00 per day" in body["message"]
    assert book.admit("r3", "key-a", "other-team").allowed  # another team is not affected


def test_soft_limit_warns_and_admits() -> None:
    budget = Budget("key", "key-a", "month", soft_usd=0.5, hard_usd=2.0)
    book = BudgetBook([budget], FakeClock(NOON))
    assert book.admit("r1", "key-a", "ml", estimate_micro=400_000).warnings == ()
    decision = book.admit("r2", "key-a", "ml", estimate_micro=200_000)
    assert decision.allowed and len(decision.warnings) == 1
    assert decision.headers()["X-Budget-Warning"] == "key=key-a month spend $0.60 of soft 0.5"


def test_in_flight_reservations_count_against_the_hard_limit() -> None:
    budget = Budget("key", "key-a", "day", hard_usd=1.0)
    book = BudgetBook([budget], FakeClock(NOON))
    assert book.admit("r1", "key-a", "", estimate_micro=600_000).allowed
    assert book.admit("r2", "key-a", "", estimate_micro=600_000).allowed  # 0.6 < 1.0 at admission
    assert not book.admit("r3", "key-a", "", estimate_micro=1).allowed  # 1.2 reserved
    book.settle("r1", 100_000)
    book.settle("r2", 100_000)
    assert book.used_micro(budget) == 200_000
    assert book.admit("r4", "key-a", "").allowed


def test_a_new_period_starts_at_zero() -> None:
    budget = Budget("team", "ml", "day", hard_usd=1.0)
    clock = FakeClock(NOON)
    book = BudgetBook([budget], clock)
    assert book.admit("late", "k", "ml").allowed
    book.seed(budget, 5_000_000)
    assert not book.admit("r1", "k", "ml").allowed
    clock.now += 86_400
    assert book.admit("r2", "k", "ml").allowed
    book.settle("late", 3_000_000)  # it belongs to yesterday
    assert book.used_micro(budget) == 0


@pytest.mark.parametrize("seed", range(5))
def test_overspend_is_bounded_by_the_requests_in_flight(seed: int) -> None:
    rng = random.Random(seed)
    hard_micro = 10_000_000
    budget = Budget("team", "ml", "day", hard_usd=hard_micro / 1e6)
    book = BudgetBook([budget], FakeClock(NOON))
    in_flight: dict[str, tuple[int, int]] = {}  # request id -> (actual cost, estimate)
    in_flight_at_last_admission = 0
    for i in range(3000):
        if rng.random() < 0.55:
            cost, estimate = rng.randint(0, 200_000), rng.randint(0, 50_000)
            if book.admit(f"r{i}", "k", "ml", estimate_micro=estimate).allowed:
                in_flight[f"r{i}"] = (cost, estimate)
                in_flight_at_last_admission = sum(c for c, _ in in_flight.values())
        elif in_flight:
            request_id = rng.choice(sorted(in_flight))
            book.settle(request_id, in_flight.pop(request_id)[0])
    for request_id, (cost, _) in sorted(in_flight.items()):
        book.settle(request_id, cost)
    spent = book.used_micro(budget)
    assert spent >= hard_micro  # the budget did run out
    assert spent - hard_micro < in_flight_at_last_admission


def test_key_and_team_budgets_both_apply() -> None:
    budgets = [Budget("key", "k", "day", hard_usd=5.0), Budget("team", "ml", "day", hard_usd=1.0)]
    book = BudgetBook(budgets, FakeClock(NOON))
    assert len(book.budgets_for("k", "ml")) == 2
    book.seed(budgets[1], 1_000_000)
    assert not book.admit("r1", "k", "ml").allowed
    assert book.admit("r2", "k", "web").allowed


@pytest.mark.parametrize(
    ("kwargs", "advice"),
    [
        ({}, "needs soft_usd, hard_usd or both"),
        ({"soft_usd": -1.0}, "must be >= 0"),
        ({"soft_usd": 3.0, "hard_usd": 2.0}, "soft_usd must not exceed hard_usd"),
    ],
)
def test_bad_budgets(kwargs: dict[str, float], advice: str) -> None:
    with pytest.raises(ValueError, match=advice):
        Budget("team", "ml", "day", **kwargs)
