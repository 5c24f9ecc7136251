"""The hold-at-zero queue: bounded, released oldest first on ready, expired after its timeout,
on injected time."""

import pytest

from inferplane.control.holding import HoldQueue


def test_holds_up_to_the_bound_then_refuses() -> None:
    queue: HoldQueue[str] = HoldQueue(max_held=2, timeout_s=10.0)
    assert queue.hold("a", 0.0) and queue.hold("b", 1.0)
    assert not queue.hold("c", 2.0)
    assert len(queue) == 2
    assert not HoldQueue[str](max_held=0, timeout_s=1.0).hold("a", 0.0)


def test_a_ready_replica_releases_everything_oldest_first() -> None:
    queue: HoldQueue[str] = HoldQueue(max_held=8, timeout_s=10.0)
    for index, item in enumerate(["a", "b", "c"]):
        queue.hold(item, float(index))
    assert queue.release() == ["a", "b", "c"]
    assert len(queue) == 0 and queue.release() == []
    assert queue.hold("d", 5.0)  # room again


def test_holds_expire_after_the_timeout() -> None:
    queue: HoldQueue[str] = HoldQueue(max_held=8, timeout_s=10.0)
    queue.hold("a", 0.0)
    queue.hold("b", 3.0)
    assert queue.expire(9.9) == []
    assert queue.expire(10.0) == ["a"]  # exactly at its deadline
    assert queue.expire(20.0) == ["b"] and len(queue) == 0


def test_discard_forgets_by_identity() -> None:
    queue: HoldQueue[list[int]] = HoldQueue(max_held=8, timeout_s=10.0)
    first, twin = [1], [1]  # equal, not the same: mutable records can be held
    queue.hold(first, 0.0)
    queue.hold(twin, 0.0)
    queue.discard(twin)
    queue.discard(twin)  # already gone: nothing happens
    released = queue.release()
    assert len(released) == 1 and released[0] is first


def test_bad_bounds_are_errors() -> None:
    with pytest.raises(ValueError, match="max_held"):
        HoldQueue[str](max_held=-1, timeout_s=1.0)
    with pytest.raises(ValueError, match="timeout"):
        HoldQueue[str](max_held=1, timeout_s=0.0)
