"""Durations in the fleet file: a number of seconds or a string such as 300ms, 30s, 5m, 2h, 1d."""

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Return seconds for a duration; raise ValueError with advice otherwise."""
    if isinstance(value, bool):
        raise ValueError(_advice(value))
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(_advice(value))
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            return float(number) * _UNIT_SECONDS[unit or "s"]
    raise ValueError(_advice(value))


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration, for messages and round trips."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _advice(value: object) -> str:
    return f"invalid duration {value!r}: use seconds (30) or a string like 300ms, 30s, 5m, 2h, 1d"


Duration = Annotated[float, BeforeValidator(parse_duration)]
