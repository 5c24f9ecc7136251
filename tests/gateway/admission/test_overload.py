"""Overload admission: predicted waits, decisions with reasons, and the tier-ordered queue."""

from dataclasses import dataclass

import pytest

from inferplane.gateway.admission.overload import (
    AdmissionQueue,
    Rates,
    decide,
    retry_after,
    tier_rank,
)


@dataclass
class Load:
    in_flight: int = 0
    outstanding_work: int = 0
    waiting: int = 0
    running: int = 0
    weight: float = 1.0
    routable: bool = True


RATES = Rates(prefill_tps=1000.0, s_per_work=0.005)  # a replica: 200 tokens of work/s


def test_admits_on_the_least_loaded_replica_with_a_free_slot() -> None:
    pool = [Load(in_flight=4, outstanding_work=400), Load(in_flight=2, outstanding_work=200)]
    decision = decide(pool, RATES, 4, 100, 50, 5.0, 0)
    assert (decision.outcome, decision.best) == ("admit", 1)
    assert decision.wait_s == pytest.approx(0.05)  # its own prefill only


def test_slots_are_the_gateways_own_count_and_a_scraped_queue_adds_to_the_wait() -> None:
    lagging = [Load(in_flight=1, outstanding_work=100, waiting=3, running=1)]
    assert decide(lagging, RATES, 4, 100, 0, 5.0, 0).outcome == "admit"
    full = [Load(in_flight=2, outstanding_work=200) for _ in range(2)]
    assert decide(full, RATES, 2, 100, 0, 5.0, 0).outcome == "queue"
    full[0].waiting = 40  # another gateway's requests queued there
    assert decide(full, RATES, 2, 100, 0, 5.0, 0).outcome == "refuse"


def test_queues_when_full_but_the_pool_drains_in_time() -> None:
    # 2 replicas x 2 slots, all held; the pool does 400 tokens of work/s: 4 requests a second.
    pool = [Load(in_flight=2, outstanding_work=200) for _ in range(2)]
    decision = decide(pool, RATES, 2, 100, 0, 5.0, 3)
    assert decision.outcome == "queue"
    assert decision.wait_s == pytest.approx(1.0)  # 4 ahead of it in all, one second


def test_refuses_past_the_deadline_with_the_drain_time() -> None:
    pool = [Load(in_flight=2, outstanding_work=200) for _ in range(2)]
    decision = decide(pool, RATES, 2, 100, 0, 5.0, 39)  # 40 ahead: 10 s, 5 s too many
    assert decision.outcome == "refuse"
    assert decision.wait_s == pytest.approx(10.0)
    assert decision.retry_after_s == 5


def test_no_routable_replica_is_a_refusal() -> None:
    decision = decide([Load(routable=False)], RATES, 4, 10, 0, 5.0, 0)
    assert decision.outcome == "refuse"
    assert decision.retry_after_s == 60


def test_a_heavier_replica_has_more_slots() -> None:
    pool = [Load(in_flight=2, outstanding_work=20, weight=2.0)]
    assert decide(pool, RATES, 2, 10, 0, 5.0, 0).outcome == "admit"


def test_rates_follow_what_finished_requests_took() -> None:
    rates = Rates(prefill_tps=1000.0, s_per_work=0.01)
    for _ in range(50):  # 2 s for 100 tokens of work, sharing the replica with 3 others
        rates.observe(work=100, prompt_tokens=50, ttft_s=0.1, total_s=2.0, sharing=4)
    assert rates.prefill_tps == pytest.approx(500.0, rel=0.01)
    assert rates.s_per_work == pytest.approx(0.005, rel=0.01)


def test_retry_after_is_whole_seconds_within_bounds() -> None:
    assert retry_after(0.01) == 1
    assert retry_after(2.2) == 3
    assert retry_after(1e6) == 60
    assert retry_after(float("inf")) == 60


def test_tier_rank_orders_listed_tiers_first() -> None:
    order = ("premium", "standard", "free")
    assert [tier_rank(t, order) for t in ("premium", "free", "gold", None)] == [0, 2, 3, 3]


def test_queue_serves_better_tiers_first_then_priority_then_arrival() -> None:
    queue: AdmissionQueue[str] = AdmissionQueue(8)
    queue.push("free-1", 2)
    queue.push("premium-1", 0)
    queue.push("free-urgent", 2, priority=5)
    queue.push("premium-2", 0)
    assert queue.ahead_of(1) == 2
    assert [queue.pop() for _ in range(4)] == ["premium-1", "premium-2", "free-urgent", "free-1"]
    assert queue.pop() is None


def test_a_full_queue_pushes_out_its_worst_for_a_better_newcomer() -> None:
    queue: AdmissionQueue[str] = AdmissionQueue(2)
    assert queue.push("free-1", 2) == (True, None)
    assert queue.push("free-2", 2) == (True, None)
    assert queue.push("free-3", 2) == (False, None)  # no better than the worst: refused
    assert queue.push("premium", 0) == (True, "free-2")
    assert queue.remove("free-1")
    assert not queue.remove("free-1")
    assert queue.peek() == "premium"
