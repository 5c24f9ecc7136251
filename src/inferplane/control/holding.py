"""Requests held while a pool has no routable replica (scaling from zero, a tier promotion under
way): bounded, released oldest first once a replica is ready, expired after a timeout.

A queue over any item, with time passed in: the controller holds one future per waiting request
(the gateway's proxy awaits it), the simulator holds its request records. `hold` refuses beyond
`max_held` (that client gets 503 at once); `release` hands back everything held, oldest first,
when a replica becomes ready; `expire(now)` hands back what has waited `timeout_s`. Items are
compared by identity, so mutable records can be held.
"""

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class HoldQueue(Generic[T]):
    """One pool's held requests, each with the time its hold runs out."""

    def __init__(self, max_held: int, timeout_s: float) -> None:
        if max_held < 0:
            raise ValueError(f"max_held must be >= 0, got {max_held}")
        if timeout_s <= 0:
            raise ValueError(f"the hold timeout must be > 0 seconds, got {timeout_s}")
        self.max_held = max_held
        self.timeout_s = timeout_s
        self._held: deque[tuple[float, T]] = deque()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, item: T, now: float) -> bool:
        """Hold `item` from `now` until `now + timeout_s`; False when the queue is full."""
        if len(self._held) >= self.max_held:
            return False
        self._held.append((now + self.timeout_s, item))
        return True

    def release(self) -> list[T]:
        """A replica is ready: everything held, oldest first; the queue is empty after."""
        released = [item for _, item in self._held]
        self._held.clear()
        return released

    def expire(self, now: float) -> list[T]:
        """What has been held `timeout_s` or longer by `now`, oldest first; it leaves the queue."""
        expired = [item for deadline, item in self._held if deadline <= now]
        if expired:
            self._held = deque((d, item) for d, item in self._held if d > now)
        return expired

    def discard(self, item: T) -> None:
        """Forget `item` if it is still held (its waiter was answered or gave up)."""
        for index, (_, held) in enumerate(self._held):
            if held is item:
                del self._held[index]
                return
