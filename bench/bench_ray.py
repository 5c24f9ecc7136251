"""The Ray backend against the local one: how long a replica takes to start, and what the
gateway adds to a request when the replica runs on another Ray node instead of its own.

(a) Start time: `inferplane serve demo:tiny` started by the local actuator (a child process)
and by the Ray actuator (a placement group and an actor on a local Ray, the server the actor's
child), each timed from `start` to the first 200 on /ready; for Ray also to the moment the
actor answered with its address (placement + worker start). Rounds alternate the two.

(b) Added latency: a Ray cluster of two node processes on this machine, the head (where
`inferplane up` runs its gateway) and a second node, each declaring one fake GPU of its own
type (`near`, `far`), so a pool of each type lands on one node. Sequential one-token
completions go to each replica directly and through the gateway, interleaved; the gateway's
added latency is the median of per-round differences. On one machine "another node" is
another raylet and its processes: the network path is the same loopback, so this measures
what Ray's placement costs in the request path (nothing, by design: the gateway calls the
replica's own address), not a real network hop.

Writes bench/results/ray.json and ray.png, with the machine and its load average.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import matplotlib
import ray
from ray.cluster_utils import Cluster

from inferplane.config.schema import ModelSpec
from inferplane.control.actuators.base import ReplicaSpec
from inferplane.control.actuators.local import LocalActuator, free_port
from inferplane.control.actuators.ray import RayActuator, connect
from inferplane.control.actuators.ray_bundle import Bundle
from inferplane.control.actuators.ray_replica import HostConfig
from inferplane.control.replicas import serve_args

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from machine import machine_record

RESULTS = Path(__file__).parent / "results"
MODEL = ModelSpec(source="demo:tiny", dtype="float32")
SPEC = ReplicaSpec("bench", "bench", serve_args("bench", MODEL, "64MiB"))
FLEET = """
models:
  near: {source: demo:tiny, dtype: float32}
  far: {source: demo:tiny, dtype: float32}
pools:
  near: {model: near, replicas: {min: 1, max: 1}, resources: {gpu: near, count: 1}}
  far: {model: far, replicas: {min: 1, max: 1}, resources: {gpu: far, count: 1}}
routes:
  - {name: near, match: {model: near}, pool: near}
  - {name: far, pool: far}
backend: ray
ray: {gpu_type_as: resource}
"""


async def ready(client: httpx.AsyncClient, url: str) -> bool:
    if not url:
        return False
    try:
        return (await client.get(f"{url}/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def start_local(folder: Path) -> dict[str, float]:
    actuator = LocalActuator(folder, clock=time.time)
    started = time.perf_counter()
    handle = actuator.start(SPEC)
    async with httpx.AsyncClient(timeout=1.0) as client:
        while not await ready(client, handle.url):
            await asyncio.sleep(0.02)
    result = {"ready_s": time.perf_counter() - started}
    await actuator.close()
    return result


async def start_ray(folder: Path) -> dict[str, float]:
    actuator = RayActuator({"bench": Bundle(cpus=1.0)}, HostConfig(str(folder)))
    started = time.perf_counter()
    handle = actuator.start(SPEC)
    placed = None
    async with httpx.AsyncClient(timeout=1.0) as client:
        while not await ready(client, handle.url):
            actuator.reap()
            if handle.url and placed is None:
                placed = time.perf_counter() - started
            await asyncio.sleep(0.02)
    result = {"placed_s": placed or 0.0, "ready_s": time.perf_counter() - started}
    await actuator.close()
    return result


def start_times(rounds: int, folder: Path) -> dict[str, list[dict[str, float]]]:
    owned = connect(None)  # a local Ray, as `inferplane up --backend ray` starts without one
    times: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    try:
        for _ in range(rounds):
            times["local"].append(asyncio.run(start_local(folder)))
            times["ray"].append(asyncio.run(start_ray(folder)))
    finally:
        if owned:
            ray.shutdown()
    return times


@contextlib.contextmanager
def two_nodes() -> Iterator[Cluster]:
    head = {"num_cpus": 1, "num_gpus": 1, "resources": {"near": 1}, "include_dashboard": False,
            "object_store_memory": 80 * 1024**2}  # fmt: skip
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        cluster.add_node(num_cpus=1, num_gpus=1, resources={"far": 1},
                         object_store_memory=80 * 1024**2)  # fmt: skip
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


@contextlib.contextmanager
def up(address: str, folder: Path) -> Iterator[str]:
    folder.mkdir(parents=True, exist_ok=True)
    fleet = folder / "fleet.yaml"
    fleet.write_text(FLEET)
    port = free_port()
    command = [sys.executable, "-m", "inferplane", "up", str(fleet), "--port", str(port),
               "--ray-address", address, "--no-ledger", "--log-dir", str(folder / "logs"),
               "--state-dir", str(folder / "state")]  # fmt: skip
    with (folder / "up.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def replica_urls(gateway: str, timeout_s: float = 300.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            pools = httpx.get(f"{gateway}/admin/fleet", timeout=5).json()["pools"]
            urls = {p["name"]: r["url"] for p in pools for r in p["replicas"]
                    if r["phase"] == "ready"}  # fmt: skip
            if set(urls) == {"near", "far"}:
                return urls
        time.sleep(0.5)
    raise SystemExit("the replicas were not ready in time")


def one_request(client: httpx.Client, url: str, model: str) -> float:
    body = {"model": model, "prompt": "hi", "max_tokens": 1}
    started = time.perf_counter()
    client.post(f"{url}/v1/completions", json=body).raise_for_status()
    return time.perf_counter() - started


def added_latency(rounds: int, folder: Path) -> dict[str, Any]:
    with two_nodes() as cluster, up(cluster.address, folder) as gateway:
        replicas = replica_urls(gateway)
        samples: dict[str, list[tuple[float, float]]] = {"near": [], "far": []}
        with httpx.Client(timeout=30) as client:
            for model in samples:  # warm both paths (connections, the engines' first step)
                for _ in range(20):
                    one_request(client, replicas[model], model)
                    one_request(client, gateway, model)
            for _ in range(rounds):
                for model, pairs in samples.items():
                    direct = one_request(client, replicas[model], model)
                    pairs.append((direct, one_request(client, gateway, model)))
    return {model: _summary(pairs) for model, pairs in samples.items()}


def _summary(pairs: list[tuple[float, float]]) -> dict[str, float]:
    direct = [d for d, _ in pairs]
    through = [g for _, g in pairs]
    added = sorted(g - d for d, g in pairs)
    return {
        "direct_p50_ms": statistics.median(direct) * 1000,
        "gateway_p50_ms": statistics.median(through) * 1000,
        "added_p50_ms": statistics.median(added) * 1000,
        "added_p90_ms": added[int(len(added) * 0.9)] * 1000,
        "pairs": len(pairs),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    starts = result["start_time"]
    labels = ["local", "ray (placed)", "ray (ready)"]
    series = [[r["ready_s"] for r in starts["local"]], [r["placed_s"] for r in starts["ray"]],
              [r["ready_s"] for r in starts["ray"]]]  # fmt: skip
    left.bar(
        labels, [statistics.median(s) for s in series], color=["#999999", "#88aadd", "#3366aa"]
    )
    for index, values in enumerate(series):
        left.scatter([index] * len(values), values, color="black", zorder=3, s=10)
    left.set_ylabel("seconds from start (median, dots: rounds)")
    left.set_title("replica start, demo:tiny")
    latency = result["added_latency"]
    right.bar(["same node", "other node"], [latency["near"]["added_p50_ms"],
              latency["far"]["added_p50_ms"]], color=["#999999", "#3366aa"])  # fmt: skip
    right.set_ylabel("gateway's added latency, p50 of pairs (ms)")
    right.set_title("1-token completion through the gateway")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def machine() -> dict[str, Any]:
    return machine_record(ray=ray.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--start-rounds", type=int, default=5)
    parser.add_argument("--latency-rounds", type=int, default=200)
    parser.add_argument("--out", default="ray")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        starts = start_times(args.start_rounds, Path(folder) / "start")
        latency = added_latency(args.latency_rounds, Path(folder) / "latency")
    result = {
        "start_time": starts,
        "start_time_median_s": {
            "local_ready": statistics.median(r["ready_s"] for r in starts["local"]),
            "ray_placed": statistics.median(r["placed_s"] for r in starts["ray"]),
            "ray_ready": statistics.median(r["ready_s"] for r in starts["ray"]),
        },
        "added_latency": latency,
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / f"{args.out}.png")
    print(json.dumps({k: result[k] for k in ("start_time_median_s", "added_latency")}, indent=2))


if __name__ == "__main__":
    main()
