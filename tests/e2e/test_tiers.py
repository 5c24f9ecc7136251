"""Model tiers end to end: `inferplane up` with real `inferplane serve` replicas of demo:tiny.
Tier idleness drives both pools (the autoscalers' idle_to_zero is longer): a keep_warm pool
idles to warm (/admin/sleep, the process stays) and the next request wakes the same process
and completes; a plain pool idles to warm, then cold (no process), and the next request
starts one and completes. Each transition shows on the gateway's /metrics with its from/to."""

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.up_process import UpProcess, alive, running

pytestmark = pytest.mark.timeout(120)
FLEET = """
models:
  w: {source: demo:tiny, dtype: float32, max_model_len: 256}
  c: {source: demo:tiny, dtype: float32, max_model_len: 256}
pools:
  w:
    model: w
    replicas: {min: 0, max: 1}
    tier: {keep_warm: true}
    autoscale: {idle_to_zero: 60s, up_window: 1s, down_window: 2s}
  c:
    model: c
    replicas: {min: 0, max: 1}
    autoscale: {idle_to_zero: 60s, up_window: 1s, down_window: 2s}
tiers: {idle_to_warm: 2s, idle_to_cold: 4s}
routes:
  - {name: w, pool: w, match: {model: w}}
  - {name: c, pool: c, match: {model: c}}
"""


class Up(UpProcess):
    def __init__(self, tmp_path: Path) -> None:
        args = ["--kv-cache-memory", "8MiB", "--drain-grace", "5"]
        args += ["--no-ledger"]  # the default ledger is in the home directory
        super().__init__(tmp_path, FLEET, args)

    def complete(self, model: str) -> int:
        body = {"model": model, "prompt": "hello", "max_tokens": 4}
        return httpx.post(f"{self.url}/v1/completions", json=body, timeout=60).status_code

    def loads(self, model: str, source: str, target: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        prefix = (
            f'inference_model_load_seconds_count{{from="{source}",model="{model}",to="{target}"}}'
        )
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
        return values[0] if values else 0.0


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with running(Up(tmp_path), name="w") as started:
        yield started


def phases(pool: dict[str, Any]) -> list[str]:
    return [replica["phase"] for replica in pool["replicas"]]


def test_warm_and_cold_promotions_complete_the_waiting_request(up: Up) -> None:
    assert up.complete("w") == 200  # cold -> hot while it waits
    assert up.complete("c") == 200
    assert up.loads("w", "cold", "hot") == 1 and up.loads("c", "cold", "hot") == 1

    asleep = up.until(lambda p: phases(p) == ["sleeping"], 15, name="w")  # idle -> warm
    up.until(lambda p: p["replicas"] == [], 20, name="c")  # idle longer -> cold: no process
    assert up.pool("w")["replicas"][0]["phase"] == "sleeping"  # keep_warm: never cold
    up.until(lambda _: up.loads("c", "warm", "cold") == 1, 5, name="c")  # timed once stopped
    assert up.loads("w", "hot", "warm") == 1 and up.loads("c", "hot", "warm") == 1

    assert up.complete("w") == 200  # warm -> hot: /admin/wake on the same process
    assert [r["pid"] for r in up.pool("w")["replicas"]] == [asleep["replicas"][0]["pid"]]
    assert up.loads("w", "warm", "hot") == 1

    assert up.complete("c") == 200  # cold -> hot: a new process
    assert up.loads("c", "cold", "hot") == 2

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(30) == 0
    assert up.pids and not [pid for pid in up.pids if alive(pid)]
