import pytest

from inferplane.control.rollout import (
    Gates,
    Rollout,
    RolloutPlan,
    RolloutState,
    WindowMetrics,
    regressions,
)

GOOD = WindowMetrics(requests=200, errors=1, ttft_p95_s=0.30, tpot_p95_s=0.020)
BASE = WindowMetrics(requests=800, errors=4, ttft_p95_s=0.28, tpot_p95_s=0.019)


def plan(**changes: object) -> RolloutPlan:
    return RolloutPlan(pool="chat", to_model="chat-v2", hold_s=60, **changes)  # type: ignore[arg-type]


def drive(rollout: Rollout, start: float, seconds: float, canary: WindowMetrics) -> list[str]:
    actions: list[str] = []
    for tick in range(int(seconds / 10) + 1):
        actions.append(rollout.evaluate(start + tick * 10, canary, BASE).action)
    return actions


def test_a_healthy_canary_walks_every_step_to_completion() -> None:
    rollout = Rollout.start(plan())
    percents = [rollout.current_percent]
    now = 0.0
    while rollout.state.status == "running" and now < 1000:
        decision = rollout.evaluate(now, GOOD, BASE)
        if decision.action == "advance":
            percents.append(decision.percent)
        now += 10
    assert percents == [5, 25, 50, 100]
    assert rollout.state.status == "complete" and rollout.current_percent == 100
    assert 240 <= now <= 260  # four holds of 60 s
    assert rollout.evaluate(now, GOOD, BASE).action == "complete"


def test_a_canary_that_errors_is_rolled_back() -> None:
    rollout = Rollout.start(plan())
    drive(rollout, 0, 60, GOOD)
    assert rollout.current_percent == 25
    bad = WindowMetrics(requests=100, errors=12, ttft_p95_s=0.3, tpot_p95_s=0.02)
    decision = rollout.evaluate(70, bad, BASE)
    assert decision.action == "rollback" and decision.percent == 0
    assert "error rate 12.0% vs baseline 0.5%" in decision.reason
    assert rollout.state.status == "rolled_back" and rollout.current_percent == 0
    assert rollout.evaluate(80, GOOD, BASE).action == "rollback"  # terminal


def test_latency_regressions_roll_back() -> None:
    gates = Gates()
    slow_ttft = WindowMetrics(requests=100, ttft_p95_s=0.40, tpot_p95_s=0.019)
    assert regressions(gates, slow_ttft, BASE)[0].startswith("TTFT p95 400 ms vs baseline 280 ms")
    slow_tpot = WindowMetrics(requests=100, ttft_p95_s=0.28, tpot_p95_s=0.030)
    assert regressions(gates, slow_tpot, BASE)[0].startswith("TPOT p95")
    assert regressions(gates, GOOD, BASE) == []
    within = WindowMetrics(requests=100, ttft_p95_s=0.28 * 1.19, tpot_p95_s=None)
    assert regressions(gates, within, BASE) == []


def test_error_floor_ignores_tiny_rates() -> None:
    gates = Gates(error_margin=0.0, error_floor=0.01)
    clean_base = WindowMetrics(requests=1000, errors=0)
    assert regressions(gates, WindowMetrics(requests=1000, errors=5), clean_base) == []
    assert regressions(gates, WindowMetrics(requests=1000, errors=20), clean_base)


def test_no_judgement_below_the_minimum_request_count() -> None:
    rollout = Rollout.start(plan())
    few_bad = WindowMetrics(requests=10, errors=10)
    actions = drive(rollout, 0, 120, few_bad)
    assert set(actions) == {"hold"}
    assert "10 of 50 canary requests" in rollout.state.reason


def test_the_last_good_baseline_stands_in_at_full_traffic() -> None:
    rollout = Rollout.start(plan(steps=(50.0, 100.0)))
    rollout.evaluate(0, GOOD, BASE)
    rollout.evaluate(60, GOOD, BASE)
    assert rollout.current_percent == 100
    slow = WindowMetrics(requests=500, ttft_p95_s=1.0, tpot_p95_s=0.02)
    decision = rollout.evaluate(70, slow, WindowMetrics())
    assert decision.action == "rollback" and "TTFT" in decision.reason


def test_holds_without_any_baseline() -> None:
    rollout = Rollout.start(plan(steps=(100.0,)))
    rollout.evaluate(0, GOOD, WindowMetrics())
    decision = rollout.evaluate(100, GOOD, WindowMetrics())
    assert decision.action == "hold" and "no baseline" in decision.reason


def test_resume_keeps_the_step_and_the_remaining_hold() -> None:
    first = Rollout.start(plan())
    drive(first, 0, 60, GOOD)  # advanced to 25%
    first.evaluate(100, GOOD, BASE)  # 40 s held at 25%
    saved = first.state
    assert (saved.step, saved.held_s) == (1, 40)
    resumed = Rollout(saved)
    assert resumed.evaluate(5000, GOOD, BASE).action == "hold"  # downtime is not hold time
    assert resumed.evaluate(5015, GOOD, BASE).action == "hold"
    assert resumed.evaluate(5020, GOOD, BASE).action == "advance"


def test_abort() -> None:
    rollout = Rollout.start(plan())
    decision = rollout.abort("operator")
    assert decision.action == "rollback" and rollout.state.reason == "aborted: operator"


@pytest.mark.parametrize(
    ("steps", "message"),
    [((), "increase"), ((25.0, 5.0, 100.0), "increase"), ((5.0, 50.0), "end at 100"),
     ((0.0, 100.0), "above 0")],
)  # fmt: skip
def test_plan_validation(steps: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(steps=steps)


def test_state_percent_by_status() -> None:
    state = RolloutState(plan())
    assert state.current_percent == 5
    assert RolloutState(plan(), status="complete").current_percent == 100
