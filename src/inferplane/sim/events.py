"""The event loop: a heap of timed actions, run in time order on a SimClock.

Actions at the same time run in the order they were scheduled (a sequence number breaks the
tie), so a run is deterministic. An action may schedule more actions, at or after now.
"""

import heapq
import itertools
from collections.abc import Callable

from inferplane.sim.clock import SimClock

Action = Callable[[], None]


class EventLoop:
    """Runs scheduled actions in (time, order of scheduling) order."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        self.events_run = 0
        self._stopped = False

    def at(self, when: float, action: Action) -> None:
        """Run `action` at simulated time `when` (not before now)."""
        if when < self.clock.now:
            raise ValueError(f"cannot schedule in the past ({when} < {self.clock.now})")
        heapq.heappush(self._heap, (when, next(self._order), action))

    def after(self, delay: float, action: Action) -> None:
        self.at(self.clock.now + delay, action)

    def __len__(self) -> int:
        return len(self._heap)

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def stop(self) -> None:
        """End `run` after the action now running: what is still scheduled never happens."""
        self._stopped = True

    def run(self, until: float | None = None) -> None:
        """Run actions until none are left, the next one is later than `until`, or one of them
        called `stop`."""
        heap, clock, pop = self._heap, self.clock, heapq.heappop
        self._stopped = False
        while heap and (until is None or heap[0][0] <= until) and not self._stopped:
            when, _, action = pop(heap)
            clock.advance_to(when)
            action()
            self.events_run += 1
