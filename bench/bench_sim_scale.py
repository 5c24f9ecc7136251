"""Simulator speed: requests simulated per second, from a pool of 8 to a fleet of 1,000.

Part (a), the small runs the simulator's speed was first quoted on: the Azure conversation
trace (19,366 requests) through 8 H100 replicas at its own pace and through 32 at 4x, under
least_outstanding (the fleet default).

Part (b), the large run: 1,000,000 requests through 1,000 H100 replicas. The trace is the Azure
conversation and code traces, 36 seeded, time-shifted copies of each merged and replayed 27x
faster (about 7,900 requests a second, 8 a second per replica: a fleet at about half its
capacity), cut at the first million. Every replica runs the engine's real Scheduler and
KVCacheManager; the balancer is power_of_two (a full scan of 1,000 replicas per request, as
least_outstanding does, is what large gateways avoid). With --pools 2, the same replicas are
two pools of 500 behind a 50/50 split rule, simulated in two processes (--workers 2).

For each run: wall and CPU seconds, requests per wall and per CPU second, the peak resident
memory, and what the fleet served (TTFT percentiles, refusals).

    python bench/bench_sim_scale.py                  # (a) and (b), one pool
    python bench/bench_sim_scale.py --part b --pools 2
    python bench/bench_sim_scale.py --requests 100000 --replicas 100   # a smaller (b)

Writes bench/results/sim_scale.json (the runs of this invocation are merged into it) and
sim_scale.png (every run in it).
"""

import argparse
import json
import os
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, os.path.dirname(__file__))

from sim_common import (
    AZURE_CODE,
    AZURE_CONV,
    RESULTS,
    Timer,
    fleet,
    machine_info,
    peak_rss_mib,
    write_json,
)

from inferplane.config.loader import parse_fleet
from inferplane.config.schema import FleetConfig
from inferplane.sim import SimOptions, load_trace, simulate, simulate_fleet
from inferplane.sim.synthetic import head, repeat

COPIES, SPEEDUP = 36, 27.0


def small(replicas: int, speedup: float) -> dict[str, Any]:
    trace = load_trace(AZURE_CONV, speedup=speedup)
    pool = fleet("llama-3-8b", 8192, f"{{min: {replicas}, max: {replicas}}}")
    with Timer() as timer:
        report = simulate(pool, "chat", trace, "H100", "least_outstanding")
    return _result(f"conv x{speedup:g}, {replicas} replicas", len(trace), replicas, timer,
                   report.ttft_s.p50, report.ttft_s.p99, report.rejected)  # fmt: skip


def large(requests: int, replicas: int, pools: int, workers: int) -> dict[str, Any]:
    conv, code = load_trace(AZURE_CONV), load_trace(AZURE_CODE)
    per_replica = SPEEDUP * replicas / 1000  # the same load per replica at any fleet size
    trace = head(repeat([conv, code], COPIES, speedup=per_replica, seed=0), requests)
    print(f"trace: {len(trace):,} requests over {trace.span_s:,.0f} s", flush=True)
    with Timer() as timer:
        if pools == 1:
            pool = fleet("llama-3-8b", 8192, f"{{min: {replicas}, max: {replicas}}}")
            report = simulate(pool, "chat", trace, "H100", "power_of_two")
            p50, p99, refused = report.ttft_s.p50, report.ttft_s.p99, report.rejected
        else:
            split = simulate_fleet(_split(replicas, pools), "chat", trace, "H100", "power_of_two",
                                   options=SimOptions(), workers=workers)  # fmt: skip
            p50, p99, refused = split.ttft_s.p50, split.ttft_s.p99, split.rejected
    name = f"{len(trace):,} requests, {replicas:,} replicas, {pools} pool(s), {workers} process(es)"
    return _result(name, len(trace), replicas, timer, p50, p99, refused, trace.span_s)


def _split(replicas: int, pools: int) -> FleetConfig:
    each = replicas // pools
    names = [f"chat-{i}" for i in range(pools)]
    pool_lines = "".join(
        f"  {name}: {{model: chat, replicas: {{min: {each}, max: {each}}}, "
        "resources: {gpu: H100}}\n"
        for name in names
    )
    weights = ", ".join(f"{name}: 1" for name in names)
    return parse_fleet(
        "models: {chat: {source: llama-3-8b, max_model_len: 8192}}\n"
        f"pools:\n{pool_lines}"
        f"routes:\n  - {{name: halves, split: {{weights: {{{weights}}}}}}}\n"
    )


def _result(  # noqa: PLR0917
    name: str, requests: int, replicas: int, timer: Timer, p50: float, p99: float,
    refused: int, span_s: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    result = {
        "run": name, "requests": requests, "replicas": replicas,
        "simulated_s": None if span_s is None else round(span_s, 1),
        "wall_s": round(timer.wall_s, 1), "cpu_s": round(timer.cpu_s, 1),
        "requests_per_wall_s": round(requests / timer.wall_s),
        "requests_per_cpu_s": round(requests / timer.cpu_s),
        "peak_rss_mib": round(peak_rss_mib()), "ttft_p50_s": p50, "ttft_p99_s": p99,
        "refused": refused,
    }  # fmt: skip
    print(json.dumps(result), flush=True)
    return result


def plot(runs: dict[str, dict[str, Any]]) -> None:
    """Requests per wall second of every run, its wall time and peak memory on each bar."""
    names = list(runs)
    fig, axis = plt.subplots(figsize=(11, 0.9 * len(names) + 1.5))
    rates = [runs[n]["requests_per_wall_s"] for n in names]
    bars = axis.barh([runs[n]["run"] for n in names], rates, color="tab:blue")
    for bar, name in zip(bars, names, strict=True):
        run = runs[name]
        axis.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                  f" {run['wall_s']:,.0f} s wall, {run['peak_rss_mib']:,} MiB",
                  va="center", fontsize=8)  # fmt: skip
    axis.axvline(650, color="gray", linestyle=":", label="before this work (~650/s)")
    axis.axvline(1e6 / 600, color="tab:red", linestyle="--", label="goal: 1M in 10 min")
    axis.set(
        xlabel="requests simulated per wall second (2 shared cores)",
        title="simulator speed (the engine's real scheduler and KV cache per replica)",
    )
    axis.invert_yaxis()
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "sim_scale.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["a", "b", "ab"], default="ab")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--replicas", type=int, default=1_000)
    parser.add_argument("--pools", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="default: one per pool")
    args = parser.parse_args()
    path = RESULTS / "sim_scale.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    data["machine"] = machine_info()
    if "a" in args.part:
        data["runs"]["a_8_replicas"] = small(8, 1.0)
        data["runs"]["a_32_replicas"] = small(32, 4.0)
    if "b" in args.part:
        workers = args.workers or args.pools
        key = f"b_{args.requests}_{args.replicas}_pools{args.pools}_workers{workers}"
        data["runs"][key] = large(args.requests, args.replicas, args.pools, workers)
    print(write_json("sim_scale", data))
    plot(data["runs"])


if __name__ == "__main__":
    main()
