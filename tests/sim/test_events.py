import pytest

from inferplane.sim.clock import SimClock
from inferplane.sim.events import EventLoop


def test_actions_run_in_time_order_ties_in_scheduling_order() -> None:
    loop = EventLoop(SimClock())
    seen: list[tuple[float, str]] = []

    def note(name: str) -> None:
        seen.append((loop.clock.now, name))

    loop.at(2.0, lambda: note("c"))
    loop.at(1.0, lambda: note("a"))
    loop.at(1.0, lambda: note("b"))
    loop.at(0.5, lambda: loop.after(1.0, lambda: note("d")))  # scheduled from an action
    loop.run()
    assert seen == [(1.0, "a"), (1.0, "b"), (1.5, "d"), (2.0, "c")]
    assert loop.events_run == 5


def test_run_until_leaves_later_actions_and_the_past_is_refused() -> None:
    loop = EventLoop(SimClock())
    ran: list[float] = []
    for when in (1.0, 2.0, 3.0):
        loop.at(when, lambda: ran.append(loop.clock.now))
    loop.run(until=2.0)
    assert ran == [1.0, 2.0] and loop.next_time() == 3.0 and len(loop) == 1
    with pytest.raises(ValueError, match="past"):
        loop.at(1.5, lambda: None)
