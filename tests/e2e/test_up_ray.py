"""`inferplane up --backend ray` end to end: real `inferplane serve` replicas of demo:tiny on a
Ray cluster of this machine (a head and two nodes with one fake H100 each), the gateway and
the controller in the `up` process, a separate Ray driver. One fleet, one run, in order:

- a request at zero is held while a replica is placed and started, then completes;
- a burst scales the pool to its maximum of three: two replicas on two nodes, the third
  waits and says why (on /admin/fleet and in the log);
- under that load a node dies (its raylet and the server on it killed): no non-streaming
  request fails (the gateway fails over); the replica comes back on a node with room that
  joins (the third still waits: two GPUs for three replicas);
- idle, the pool drains to zero keeping one replica asleep (warm), and the next request wakes
  it; every request of the burst completed (the drain lost none);
- Prometheus' file_sd file lists the replicas' /metrics while they run and nothing after;
- after SIGTERM nothing is left: no actor, no placement group, no server process.
"""

import concurrent.futures
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ray.cluster_utils import Cluster

from tests.control.actuators.ray_cluster import (
    add_gpu_node,
    leftovers,
    ray_cluster,
    remove_node_of,
)
from tests.e2e.up_process import UpProcess, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
FLEET = """
models:
  chat: {source: demo:tiny, dtype: float32, max_model_len: 512}
pools:
  chat:
    model: chat
    replicas: {min: 0, max: 3}
    resources: {gpu: H100, count: 1}
    autoscale: {metric: in_flight_per_replica, target: 0.5, up_window: 1s, down_window: 2s,
                up_period: 1s, down_period: 1s, idle_to_zero: 3s}
    tier: {keep_warm: true}
routes:
  - {name: default, pool: chat}
backend: ray
"""


class Up(UpProcess):
    def __init__(self, tmp_path: Path, address: str) -> None:
        self.file_sd = tmp_path / "targets.json"
        args = ["--kv-cache-memory", "16MiB", "--drain-grace", "10", "--ray-address", address]
        args += ["--no-ledger", "--file-sd", str(self.file_sd)]
        args += ["--state-dir", str(tmp_path / "state")]
        super().__init__(tmp_path, FLEET, args)

    def complete(self, max_tokens: int = 8) -> str:
        body = {"model": "chat", "prompt": "hello", "max_tokens": max_tokens}
        response = httpx.post(f"{self.url}/v1/completions", json=body, timeout=90)
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["finish_reason"])

    def stream(self, max_tokens: int) -> bool:
        """A streamed completion; False if it broke after it started (allowed on node loss)."""
        body = {"model": "chat", "prompt": "hi", "max_tokens": max_tokens, "stream": True}
        try:
            with httpx.stream("POST", f"{self.url}/v1/completions", json=body, timeout=90) as r:
                text = "".join(r.iter_text())
        except httpx.HTTPError:
            return False
        return "[DONE]" in text


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with ray_cluster(gpu_nodes=2) as running:
        yield running


@pytest.fixture
def up(cluster: Cluster, tmp_path: Path) -> Iterator[Up]:
    with running(Up(tmp_path, cluster.address), ready_s=60) as started:
        yield started


def placed(pool: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in pool["replicas"] if r["node"]]


def test_up_on_ray_places_fails_over_sleeps_wakes_and_leaves_nothing(
    up: Up, cluster: Cluster
) -> None:
    assert up.complete() in {"length", "stop"}  # held at zero while a replica is placed

    with Load(up, clients=2) as load:
        full = up.until(
            lambda p: len(placed(p)) == 2 and any(r["unplaced"] for r in p["replicas"]), 60
        )
        waiting = next(r for r in full["replicas"] if not r["node"])
        assert waiting["unplaced"].startswith("no node with 1 x H100, 1 CPU free")
        assert "cannot be placed: no node with 1 x H100" in up.log.read_text()
        first, second = placed(full)
        assert first["node"] != second["node"]  # one per node

        up.until(lambda p: p["ready"] == 2, 60)  # a replica to fail over to
        sd = json.loads(up.file_sd.read_text())
        assert {g["labels"]["node"] for g in sd} == {first["node"], second["node"]}
        victim = first
        with concurrent.futures.ThreadPoolExecutor(2) as threads:
            streams = [threads.submit(up.stream, 100) for _ in range(2)]
            time.sleep(0.5)  # the streams have started
            os.kill(victim["pid"], signal.SIGKILL)  # the whole node goes: its server too
            remove_node_of(cluster, victim["node"])
            up.until(lambda p: p["restarts"] >= 1, 20)  # reaped as a crash, restart due
            room = add_gpu_node(cluster).node_id  # a node with room joins
            back = up.until(lambda p: p["ready"] == 2 and room in _ready_nodes(p), 60)
            assert second["node"] in _ready_nodes(back)  # the survivor served on
            broken_streams = [f.result(timeout=60) for f in streams].count(False)
    assert load.failures == [] and load.done > 0  # no non-streaming request failed
    assert broken_streams <= 2  # a stream that had started on the dead node may break

    slept = up.until(lambda p: [r["phase"] for r in p["replicas"]] == ["sleeping"], 60)
    assert slept["tier"] == "warm"  # the others were drained
    assert up.complete() in {"length", "stop"}  # wakes the warm replica
    woken = up.until(lambda p: p["ready"] == 1, 10)["replicas"][0]
    assert woken["id"] == slept["replicas"][0]["id"]

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(60) == 0, up.log.read_text()[-3000:]
    assert leftovers() == {"groups": [], "actors": []}
    assert up.pids and not [pid for pid in up.pids if _alive(pid)]
    assert json.loads(up.file_sd.read_text()) == []


class Load:
    """Closed-loop clients sending non-streaming completions until the block ends; every
    answer that is not a 200 is kept."""

    def __init__(self, up: Up, clients: int) -> None:
        self.up, self.clients = up, clients
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.done = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(clients)

    def __enter__(self) -> "Load":
        for _ in range(self.clients):
            self.pool.submit(self._client)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True)

    def _client(self) -> None:
        while not self.stop.is_set():
            try:
                self.up.complete(64)
                self.done += 1
            except (AssertionError, httpx.HTTPError) as error:
                self.failures.append(str(error))


def _ready_nodes(pool: dict[str, Any]) -> set[str]:
    return {r["node"] for r in pool["replicas"] if r["phase"] == "ready"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
