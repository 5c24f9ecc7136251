import pytest

from inferplane.sim.clock import SimClock


def test_the_clock_moves_only_forward_when_told() -> None:
    clock = SimClock()
    assert clock() == 0.0
    clock.advance_to(2.5)
    assert clock() == clock.now == 2.5
    with pytest.raises(ValueError, match="back"):
        clock.advance_to(1.0)
