"""Simulated time: a clock the project's code can call, advanced only by the event loop.

Everything in the project that reads time takes a Clock (a callable returning seconds), so
handing it a SimClock makes the scheduler, the autoscaler and the gateway's records live on
simulated time. Seconds count from the start of the trace.
"""


class SimClock:
    """A callable clock whose time moves only when `advance_to` says so."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    @property
    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        if when < self._now:
            raise ValueError(f"simulated time cannot go back (from {self._now} to {when})")
        self._now = when
