"""The rate-limit zone: two real worker processes share one key's buckets, so the key gets its
limit once, not once per worker, and one budget's tally, so it is spent once; a full table
falls back to buckets per worker."""

import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import Any

from inferplane.gateway.admission.auth import ApiKey, hash_key
from inferplane.gateway.admission.limits import RateLimiter
from inferplane.gateway.admission.limits_zone import LimitsZone, stable_hash
from inferplane.ledger.budgets import Budget, BudgetBook

ALICE = ApiKey(name="alice", key_hash=hash_key("a"), requests_per_minute=30, tokens_per_minute=600)


def _worker(zone: LimitsZone | None, go: Any, results: "Queue[int]") -> None:
    limiter = RateLimiter(time.monotonic, None if zone is None else zone.attach())
    go.wait()
    results.put(sum(limiter.admit(ALICE, 5).allowed for _ in range(200)))


def _two_workers(target: Callable[..., None], shared: bool) -> list[int]:
    """What `target` counted in each of two spawned processes, given the zone or none."""
    context = multiprocessing.get_context("spawn")
    zone = LimitsZone.create(context) if shared else None
    go, results = context.Event(), context.Queue()
    workers = [context.Process(target=target, args=(zone, go, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    go.set()
    counts = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return counts


def test_two_workers_share_a_keys_limit() -> None:
    counts = _two_workers(_worker, shared=True)
    assert 30 <= sum(counts) <= 32  # 30 a minute: the burst, and a refill while they ran


def test_without_the_zone_each_worker_would_let_the_limit_through() -> None:
    assert sum(_two_workers(_worker, shared=False)) >= 60


def test_a_full_zone_leaves_further_keys_with_buckets_of_their_own() -> None:
    zone = LimitsZone.create(multiprocessing.get_context("spawn"), slots=2)
    limiter = RateLimiter(time.monotonic, zone.attach())
    bob = ApiKey(name="bob", key_hash=hash_key("b"), requests_per_minute=2)
    assert limiter.admit(ALICE, 5).allowed  # takes both slots (requests and tokens)
    assert [limiter.admit(bob, 0).allowed for _ in range(3)] == [True, True, False]


def test_the_hash_is_stable_and_never_zero() -> None:
    assert stable_hash("alice", "requests") == stable_hash("alice", "requests") != 0
    assert stable_hash("alice", "requests") != stable_hash("alice", "tokens")


BUDGET = Budget(scope="team", name="t", period="day", hard_usd=1.0)
TENTH_USD = 100_000  # micro-dollars


def _spender(zone: LimitsZone | None, go: Any, results: "Queue[int]") -> None:
    book = BudgetBook([BUDGET], time.time, None if zone is None else zone.attach())
    go.wait()
    admitted = 0
    for index in range(30):
        if book.admit(f"r{index}", "alice", "t", TENTH_USD).allowed:
            book.settle(f"r{index}", TENTH_USD)
            admitted += 1
    results.put(admitted)


def test_two_workers_spend_a_budget_once() -> None:
    assert sum(_two_workers(_spender, shared=True)) == 10  # $1 in tenths, whoever spends them
    assert sum(_two_workers(_spender, shared=False)) == 20  # each worker on its own: twice over
