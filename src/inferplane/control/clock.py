"""Time for the control plane: the Clock type and daily windows in UTC.

Every decision takes time from an injected Clock (epoch seconds), so a simulator can drive
the autoscaler, the tier manager and rollouts faster than the wall clock.
"""

from collections.abc import Callable, Iterable
from typing import TypeVar

from inferplane.config.schema import DailyWindow

Clock = Callable[[], float]
W = TypeVar("W", bound=DailyWindow)
_DAY = 86400


def minute_of_day(hhmm: str) -> int:
    """Minutes after midnight for an HH:MM string."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(now: float, window: DailyWindow) -> bool:
    """Whether epoch second `now` (UTC) falls in [start, end); an end before start wraps."""
    minute = int(now % _DAY) // 60
    start, end = minute_of_day(window.start), minute_of_day(window.end)
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end


def active_windows(now: float, windows: Iterable[W]) -> list[W]:
    return [window for window in windows if in_window(now, window)]
