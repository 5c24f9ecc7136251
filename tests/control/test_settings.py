"""The controller's settings refuse values that cannot work, with the fix in the message."""

from typing import Any

import pytest

from inferplane.control.settings import ControllerConfig


def test_defaults_hold_requests_a_minute_and_at_most_256_per_pool() -> None:
    config = ControllerConfig()
    assert (config.hold_timeout_s, config.max_held, config.interval_s) == (60.0, 256, 1.0)


@pytest.mark.parametrize("field", ["interval_s", "hold_timeout_s", "ready_timeout_s"])
def test_intervals_and_timeouts_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=r"> 0 seconds, e\.g\. 1\.0"):
        fields: dict[str, Any] = {field: 0.0}
        ControllerConfig(**fields)


def test_max_held_may_be_zero_but_not_negative() -> None:
    assert ControllerConfig(max_held=0).max_held == 0
    with pytest.raises(ValueError, match="max_held must be >= 0"):
        ControllerConfig(max_held=-1)
