"""`inferplane up` end to end: a real process running the gateway, the controller and real
`inferplane serve` replicas of demo:tiny. One fleet, one run, in order: a request at zero is
held and completes; a SIGKILLed replica is restarted; a burst scales up (two replicas, each
pinned to cores of its own); idleness scales to
zero and the next request wakes a replica; SIGTERM leaves no child behind, and every request
is in the fleet's ledger."""

import concurrent.futures
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from inferplane.control.inventory import parse_cpu_list
from inferplane.ledger.store import UsageStore
from tests.e2e.up_process import UpProcess, alive, running

pytestmark = pytest.mark.timeout(150)
FLEET = """
models:
  chat: {source: demo:tiny, dtype: float32, max_model_len: 512}
pools:
  chat:
    model: chat
    replicas: {min: 0, max: 2}
    autoscale: {metric: in_flight_per_replica, target: 2, up_window: 1s, down_window: 2s,
                up_period: 1s, down_period: 1s, idle_to_zero: 3s}
routes:
  - {name: default, pool: chat}
"""


class Up(UpProcess):
    def __init__(self, tmp_path: Path) -> None:
        self.ledger = tmp_path / "ledger.db"
        fleet = FLEET + f"ledger: {{url: 'sqlite:///{self.ledger}'}}\n"
        super().__init__(tmp_path, fleet, ["--kv-cache-memory", "16MiB", "--drain-grace", "10"])
        self.client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="none", max_retries=0)

    def complete(self, max_tokens: int = 8) -> str:
        result = self.client.completions.create(
            model="chat", prompt="hello", max_tokens=max_tokens, timeout=60
        )
        return result.choices[0].finish_reason or ""


def assert_pinned(replica: dict[str, Any], engine: bool = True) -> set[int]:
    """On the cores it reports, as many threads; its engine process (once it has started
    one: `engine`) on the same cores."""
    cpus = set(replica["cpus"])
    family = [replica["pid"], *children(replica["pid"])]
    assert cpus and len(family) >= (2 if engine else 1)
    assert all(set(parse_cpu_list(status(pid, "Cpus_allowed_list"))) == cpus for pid in family)
    with open(f"/proc/{replica['pid']}/environ", "rb") as environ:
        assert f"OMP_NUM_THREADS={len(cpus)}".encode() in environ.read().split(b"\0")
    return cpus


def status(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as lines:
        return next(line for line in lines if line.startswith(f"{field}:")).split(":")[1].strip()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if entry.name.isdigit() and int(status(int(entry.name), "PPid")) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with running(Up(tmp_path)) as started:
        yield started


def test_up_scales_from_zero_restarts_scales_up_and_down_and_leaves_no_orphan(up: Up) -> None:
    assert up.pool()["replicas"] == []
    assert up.complete() in {"length", "stop"}  # held at zero while a replica starts

    victim = up.until(lambda p: p["ready"] == 1, 10)["replicas"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    up.until(lambda p: p["restarts"] == 1, 5)  # seen as a crash; a restart is due
    assert up.complete() in {"length", "stop"}  # held until the restarted replica is ready
    restarted = up.until(lambda p: p["restarts"] == 1 and p["ready"] >= 1, 10)
    assert victim["pid"] not in {r["pid"] for r in restarted["replicas"]}
    assert_pinned(restarted["replicas"][0])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        burst = [pool.submit(up.complete, 400) for _ in range(8)]
        started = time.monotonic()
        up.until(lambda p: len(p["replicas"]) == 2, 15)
        assert time.monotonic() - started < 15
        first, second = up.pool()["replicas"]
        assert not assert_pinned(first, engine=False) & assert_pinned(second, engine=False)
        assert all(f.result(timeout=90) in {"length", "stop"} for f in burst)

    up.until(lambda p: p["replicas"] == [], 30)  # idle -> zero
    assert up.complete() in {"length", "stop"}  # the next request wakes a replica and completes

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(30) == 0
    assert up.pids and not [pid for pid in up.pids if alive(pid)]
    with UsageStore(f"sqlite:///{up.ledger}") as store:
        requests = [r for r in store.records() if r.kind == "request"]
    assert len(requests) == 11  # 1 + 1 + a burst of 8 + 1, each stored once
    assert {(r.model, r.pool, r.status) for r in requests} == {("chat", "chat", "ok")}
    assert all(r.completion_tokens > 0 and r.prompt_tokens > 0 for r in requests)
