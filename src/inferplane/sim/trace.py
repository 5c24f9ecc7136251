"""Request traces, and the Azure LLM inference trace format, as arrivals relative to the first row.

The Azure LLM Inference Trace 2023 (CC-BY-4.0, Patel et al., "Splitwise", ISCA 2024) is a CSV
of TIMESTAMP (wall clock, `YYYY-MM-DD HH:MM:SS.fffffff`, time zone not stated: read as UTC),
ContextTokens (prompt length) and GeneratedTokens (output length). Replays use
`TIMESTAMP - first TIMESTAMP` as the arrival offset; a speed-up factor divides the offsets
(2.0 replays the same requests at twice the rate), and a row limit keeps the first rows.

A request may carry `hash_ids`, one id per `block_tokens`-token block of its prompt, where
equal ids mean equal content (the Mooncake trace; see mooncake.py). Azure rows carry none:
every prompt is its own content.
"""

import csv
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True, slots=True)  # a synthetic trace holds a million of these
class TraceRequest:
    """One request: when it arrives (seconds after the first), its prompt and output lengths,
    and the content ids of its prompt's blocks where the trace has them."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Trace:
    """Requests in arrival order; `start_epoch` is the first row's time (UTC epoch seconds),
    so daily schedules in the fleet file apply at the trace's own time of day."""

    requests: tuple[TraceRequest, ...]
    start_epoch: float = 0.0
    source: str = ""
    block_tokens: int = 0  # prompt tokens per hash id (0: the trace has no hash ids)

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def span_s(self) -> float:
        return self.requests[-1].arrival_s if self.requests else 0.0


def parse_timestamp(text: str) -> float:
    """Epoch seconds of `YYYY-MM-DD HH:MM:SS[.fraction]` read as UTC; any number of digits."""
    whole, _, fraction = text.strip().partition(".")
    try:
        moment = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        extra = int(fraction) / 10 ** len(fraction) if fraction else 0.0
    except ValueError as error:
        raise ValueError(f"bad TIMESTAMP {text!r}: expected YYYY-MM-DD HH:MM:SS.fffffff") from error
    return moment.timestamp() + extra


def load_azure_trace(path: str | Path, speedup: float = 1.0, limit: int | None = None) -> Trace:
    """Read an Azure LLM inference trace CSV; ValueError naming the line for bad input."""
    check_replay(speedup, limit)
    file = Path(path)
    with file.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(_rows(csv.DictReader(handle), limit, str(file)))
    if not rows:
        raise ValueError(f"{file}: the trace has no rows")
    start = rows[0][0]
    requests = tuple(
        TraceRequest((stamp - start) / speedup, prompt, output) for stamp, prompt, output in rows
    )
    return Trace(in_order(requests, str(file), "TIMESTAMP"), start, str(file))


def check_replay(speedup: float, limit: int | None) -> None:
    if speedup <= 0:
        raise ValueError(f"speedup must be > 0 (got {speedup}); 2.0 replays twice as fast")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 row (got {limit})")


def _rows(
    reader: "csv.DictReader[str]", limit: int | None, source: str
) -> Iterator[tuple[float, int, int]]:
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}; need {_COLUMNS}")
    for number, row in enumerate(reader, start=2):
        if limit is not None and number - 2 >= limit:
            return
        try:
            stamp = parse_timestamp(row["TIMESTAMP"])
            prompt, output = int(row["ContextTokens"]), int(row["GeneratedTokens"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}, line {number}: {error}") from error
        if prompt < 1 or output < 1:
            raise ValueError(f"{source}, line {number}: token counts must be >= 1")
        yield stamp, prompt, output


def in_order(
    requests: Iterable[TraceRequest], source: str, column: str
) -> tuple[TraceRequest, ...]:
    ordered = tuple(requests)
    for earlier, later in itertools.pairwise(ordered):
        if later.arrival_s < earlier.arrival_s:
            raise ValueError(f"{source}: rows must be sorted by {column}")
    return ordered
