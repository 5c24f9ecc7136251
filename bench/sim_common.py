"""What the simulator benchmarks share: the traces, fleets, the machine they ran on, results.

The simulator is torch-free, so these benchmarks are too (engine_common.py loads torch).
"""

import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import machine_record

from inferplane.config.loader import parse_fleet
from inferplane.config.schema import FleetConfig

DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).parent / "results"
MOONCAKE = DATA / "mooncake_synthetic_trace.jsonl"
AZURE_CONV = DATA / "AzureLLMInferenceTrace_conv.csv"
AZURE_CODE = DATA / "AzureLLMInferenceTrace_code.csv"


def fleet(
    model: str = "llama-3.1-8b",
    context: int = 131_072,
    replicas: str = "{min: 8, max: 8}",
    autoscale: str = "{}",
    gpu: str = "H100",
) -> FleetConfig:
    """One pool `chat` of `model` (a planner preset) on `gpu`, priced at the runpod list."""
    return parse_fleet(
        f"models: {{chat: {{source: {model}, max_model_len: {context}}}}}\n"
        f"pools: {{chat: {{model: chat, replicas: {replicas}, resources: {{gpu: {gpu}}}, "
        f"autoscale: {autoscale}}}}}\n"
        "pricing: {provider: runpod}\n"
    )


def machine_info() -> dict[str, Any]:
    """What ran the benchmark, without any path or host name."""
    return machine_record(load_average_before=list(os.getloadavg()))


@dataclass
class Timer:
    """Wall and CPU seconds of a block, child processes' CPU included (the machine is
    shared: both say something)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    def __enter__(self) -> "Timer":
        self._wall, self._cpu = time.perf_counter(), _cpu_now()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = _cpu_now() - self._cpu


def _cpu_now() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def peak_rss_mib() -> float:
    """The largest resident memory of this process, or of one of its finished children,
    so far (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    data["machine"] = {**data.get("machine", {}), "load_average_after": list(os.getloadavg())}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
