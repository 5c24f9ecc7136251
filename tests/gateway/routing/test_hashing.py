from collections import Counter

from inferplane.gateway.routing.hashing import hash64, mix64, stable_bucket


def test_buckets_are_stable_and_in_range() -> None:
    assert stable_bucket("alice") == stable_bucket("alice")
    assert stable_bucket("alice") == 4729  # the same in every process: a pinned value
    assert all(0 <= stable_bucket(f"user-{i}") < 10_000 for i in range(1000))


def test_buckets_spread_evenly() -> None:
    tenths = Counter(stable_bucket(f"user-{i}") // 1000 for i in range(10_000))
    assert min(tenths.values()) > 850


def test_hash64_and_mix64_are_64_bit() -> None:
    assert 0 <= hash64(b"x") < 2**64
    assert mix64(1) != mix64(2)
    assert all(0 <= mix64(v) < 2**64 for v in (0, 1, 2**64 - 1))
