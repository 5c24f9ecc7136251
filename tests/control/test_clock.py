from inferplane.config.schema import DailyWindow, ScheduledMinimum
from inferplane.control.clock import active_windows, in_window, minute_of_day

DAY = 86400


def at(hhmm: str, day: int = 3) -> float:
    return day * DAY + minute_of_day(hhmm) * 60.0


def test_window_is_half_open() -> None:
    window = DailyWindow(start="08:00", end="18:00")
    assert in_window(at("08:00"), window)
    assert in_window(at("17:59"), window)
    assert not in_window(at("18:00"), window)
    assert not in_window(at("07:59"), window)


def test_window_wraps_past_midnight() -> None:
    window = DailyWindow(start="22:00", end="02:00")
    assert in_window(at("23:30"), window)
    assert in_window(at("01:00"), window)
    assert not in_window(at("12:00"), window)


def test_active_windows_keeps_type() -> None:
    windows = [ScheduledMinimum(start="08:00", end="09:00", min=2),
               ScheduledMinimum(start="10:00", end="11:00", min=3)]  # fmt: skip
    assert [w.min for w in active_windows(at("08:30"), windows)] == [2]
