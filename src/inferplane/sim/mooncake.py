"""The Mooncake trace format: JSON Lines with the prompt's content as block ids.

The Mooncake FAST'25 trace release (Apache-2.0; Qin et al., "Mooncake: Trading More Storage
for Less Computation", FAST 2025) has one JSON object a line:

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, ...]}

`timestamp` is milliseconds from the start of the trace; `hash_ids` has one id per 512-token
block of the prompt (the last block may be partial), and equal ids mean equal content, so a
multi-turn conversation or a shared system prompt shows as a shared run of leading ids.
Arrivals are taken relative to the first line, divided by the speed-up.
"""

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inferplane.sim.trace import Trace, TraceRequest, check_replay, in_order

BLOCK_TOKENS = 512  # tokens per hash id in the Mooncake release
_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")


def load_mooncake_trace(path: str | Path, speedup: float = 1.0, limit: int | None = None) -> Trace:
    """Read a Mooncake JSONL trace; ValueError naming the line for bad input."""
    check_replay(speedup, limit)
    file = Path(path)
    with file.open(encoding="utf-8") as handle:
        rows = list(_rows(handle, limit, str(file)))
    if not rows:
        raise ValueError(f"{file}: the trace has no requests")
    start = rows[0][0]
    requests = (
        TraceRequest((stamp - start) / 1000 / speedup, prompt, output, ids)
        for stamp, prompt, output, ids in rows
    )
    return Trace(in_order(requests, str(file), "timestamp"), 0.0, str(file), BLOCK_TOKENS)


Row = tuple[float, int, int, tuple[int, ...]]


def _rows(lines: Iterator[str], limit: int | None, source: str) -> Iterator[Row]:
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if limit is not None and count >= limit:
            return
        try:
            yield _row(json.loads(line))
        except (TypeError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(f"{source}, line {number}: {error}") from error
        count += 1


def _row(data: Any) -> Row:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with " + ", ".join(_FIELDS))
    missing = [name for name in _FIELDS if name not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}; need {', '.join(_FIELDS)}")
    stamp, prompt, output = data["timestamp"], data["input_length"], data["output_length"]
    if not _number(stamp) or stamp < 0:
        raise ValueError(f"timestamp must be milliseconds >= 0, got {stamp!r}")
    if not (_integer(prompt) and _integer(output)) or prompt < 1 or output < 1:
        raise ValueError(f"input_length and output_length must be integers >= 1, got "
                         f"{prompt!r} and {output!r}")  # fmt: skip
    ids = data["hash_ids"]
    if not isinstance(ids, list) or not all(_integer(i) and i >= 0 for i in ids):
        raise ValueError("hash_ids must be a list of integers >= 0")
    blocks = math.ceil(prompt / BLOCK_TOKENS)
    if len(ids) != blocks:
        raise ValueError(f"{len(ids)} hash_ids for {prompt} input tokens: expected {blocks}, "
                         f"one per {BLOCK_TOKENS}-token block")  # fmt: skip
    return float(stamp), prompt, output, tuple(ids)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
