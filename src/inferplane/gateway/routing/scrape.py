"""Reading a replica's Prometheus text into the fields a snapshot needs.

Engines publish vLLM names (ours do too): vllm:num_requests_waiting, vllm:num_requests_running
and the KV usage under either vllm:gpu_cache_usage_perc (older vLLM) or vllm:kv_cache_usage_perc
(newer). A replica may serve several models, so series are summed (counts) or maxed (usage).
A replica without /metrics (Ollama, llama.cpp without --metrics) simply yields no values.
"""

from dataclasses import dataclass

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_WANTED = (WAITING, RUNNING, *KV_USAGE)


@dataclass(frozen=True)
class ScrapedLoad:
    """What one scrape said; None where the replica did not publish the series."""

    waiting: int | None = None
    running: int | None = None
    kv_usage: float | None = None


def parse_metrics(text: str) -> ScrapedLoad:
    """Sum the request counts and take the highest KV usage over every series found."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        parsed = _sample(line)
        if parsed is None or parsed[0] not in _WANTED:
            continue
        name, value = parsed
        if name in KV_USAGE:
            sums["kv"] = max(sums.get("kv", 0.0), value)
        else:
            sums[name] = sums.get(name, 0.0) + value
    return ScrapedLoad(
        waiting=_as_int(sums.get(WAITING)),
        running=_as_int(sums.get(RUNNING)),
        kv_usage=sums.get("kv"),
    )


def _sample(line: str) -> tuple[str, float] | None:
    """`name{labels} value [timestamp]` -> (name, value); None when the line is malformed."""
    brace = line.find("{")
    if brace >= 0:
        name, rest = line[:brace], line[line.rfind("}") + 1 :]
    else:
        name, _, rest = line.partition(" ")
    fields = rest.split()
    if not fields:
        return None
    try:
        return name, float(fields[0])
    except ValueError:
        return None


def _as_int(value: float | None) -> int | None:
    return None if value is None else round(value)
