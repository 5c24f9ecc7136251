"""Read a trace file of either format, told apart by its content, not its name.

A file whose first non-blank line is a JSON object is a Mooncake JSONL trace; one whose first
line is a CSV header is read as an Azure LLM trace (whose reader names any missing
column). Anything else is refused with the
line that did not fit.
"""

from pathlib import Path

from inferplane.sim.mooncake import load_mooncake_trace
from inferplane.sim.trace import Trace, load_azure_trace

FORMATS = (
    "an Azure LLM trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens) or a Mooncake JSONL trace"
)


def load_trace(path: str | Path, speedup: float = 1.0, limit: int | None = None) -> Trace:
    """The trace at `path`, Azure CSV or Mooncake JSONL; ValueError naming the line."""
    kind = trace_format(path)
    if kind == "mooncake":
        return load_mooncake_trace(path, speedup, limit)
    return load_azure_trace(path, speedup, limit)


def trace_format(path: str | Path) -> str:
    """ "azure" or "mooncake", from the first non-blank line of the file."""
    file = Path(path)
    with file.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("{"):
                return "mooncake"
            if "," in text:  # a CSV header: the Azure reader names any missing column
                return "azure"
            raise ValueError(f"{file}, line {number}: expected {FORMATS}, got {text[:60]!r}")
    raise ValueError(f"{file}: the file is empty; expected {FORMATS}")
