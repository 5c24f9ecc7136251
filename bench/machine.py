"""What ran a benchmark, for its result file: the CPU model, the cores this process may use
and the Python version, plus whatever versions the benchmark names (never a path or a host
name). Torch-free, so the simulator's benchmarks can use it too."""

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_record(**extra: Any) -> dict[str, Any]:
    """{"cpu", "cores", "python"} and `extra` (library versions, load averages, ...)."""
    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        **extra,
    }
