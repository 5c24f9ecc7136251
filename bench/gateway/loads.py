"""The two loads of the gateway benchmark, and the processes they run against.

- requests/s: wrk (one thread, 32 connections) posting a small non-streaming chat request,
  a warm-up run and then a measured run.
- streaming: streamload.py (aiohttp on uvloop, 32 concurrent streams) for time to first and
  last byte.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONCURRENCY = 32
PROBE_BODY = json.dumps(
    {"model": "bench-model", "max_tokens": 4, "messages": [{"role": "user", "content": "ping"}]}
).encode()


@dataclass(frozen=True)
class LoadPlan:
    """How long each load runs; every target gets the same plan."""

    warm_s: int  # one wrk run per target before the rounds, not counted
    measure_s: int  # one wrk run per target per round
    streams: int  # streams per target per round
    stream_max_s: float  # ... or fewer, for a target too slow to finish them in this time
    rounds: int  # rounds go over all targets in turn, so neighbours' noise hits all alike


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A process in its own session, so that stopping it also stops the workers it forks."""
    out = log.open("wb")
    return subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def probe(url: str) -> bool:
    request = urllib.request.Request(
        url, data=PROBE_BODY, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Until a chat request through the target answers 200; raises if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with code {process.returncode} before it was ready")
        if probe(url):
            return
        time.sleep(0.3)
    raise RuntimeError(f"not ready after {timeout_s:.0f} s")


def wrk(url: str, seconds: int, script: str = "wrk_chat.lua") -> dict[str, float]:
    argv = [
        "wrk",
        "-t1",
        f"-c{CONCURRENCY}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "requests_per_s": round((raw["requests"] - raw["status"]) / seconds_run, 1),
        "requests": raw["requests"],
        "errors": errors,
        "non_2xx": raw["status"],
        "latency_p50_ms": raw["p50_us"] / 1000,
        "latency_p99_ms": raw["p99_us"] / 1000,
    }


def streaming(url: str, streams: int, max_s: float) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(HERE / "streamload.py"),
        url,
        "--streams",
        str(streams),
        "--concurrency",
        str(CONCURRENCY),
        "--max-seconds",
        str(max_s),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print a benchmark's JSON, and write it to `out` as well when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
