"""Routing quality: every balancing policy on one pool of 8 replicas, on a trace whose prompts
share prefixes (Mooncake) and on one whose prompts share nothing (Azure conversations).

Each trace is replayed through the simulator (the engine's real scheduler and KV cache on each
replica, the gateway's real policies and prefix hashing) at a sweep of loads up to near
saturation (the speed-up divides arrival times). For each run: TTFT p50 / p90 / p99, the
prefix-cache hit rate (prompt tokens found cached), the busiest replica's share of requests
and the busy fraction (time in engine steps over GPU time). Goals, at the highest load:
prefix_affinity's p90 TTFT at least 2x better than round_robin's on Mooncake, and no more
than 5 % worse than least_outstanding's on Azure.

    python bench/bench_routing.py            # the full sweep (about 15 minutes on 2 cores)
    python bench/bench_routing.py --quick    # one load each, the first 1,000 requests

Writes bench/results/routing.json and routing.png.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, os.path.dirname(__file__))

from sim_common import AZURE_CONV, MOONCAKE, RESULTS, Timer, fleet, machine_info, write_json

from inferplane.gateway.routing.balancer import POLICIES
from inferplane.sim import load_trace, simulate
from inferplane.sim.report import SimReport

REPLICAS = 8
LOADS = {"mooncake": (2.0, 3.0, 3.5), "azure_conv": (12.0, 16.0, 20.0)}
PATHS = {"mooncake": MOONCAKE, "azure_conv": AZURE_CONV}


def run(name: str, speedup: float, policy: str, limit: int | None) -> dict[str, Any]:
    trace = load_trace(PATHS[name], speedup=speedup, limit=limit)
    pool = fleet(replicas=f"{{min: {REPLICAS}, max: {REPLICAS}}}")
    with Timer() as timer:
        report = simulate(pool, "chat", trace, "H100", policy)
    row = _row(name, speedup, report)
    row["sim_wall_s"] = round(timer.wall_s, 1)
    print(f"{name:10} x{speedup:<4g} {policy:18} p50 {row['ttft_p50_s']:7.3f} "
          f"p90 {row['ttft_p90_s']:7.3f} p99 {row['ttft_p99_s']:7.3f} "
          f"hit {row['prefix_cache_hit_rate']:6.1%} busiest {row['busiest_replica_share']:.3f} "
          f"busy {row['busy_fraction']:.2f}  ({timer.wall_s:.0f} s)", flush=True)  # fmt: skip
    return row


def _row(name: str, speedup: float, r: SimReport) -> dict[str, Any]:
    return {
        "trace": name, "speedup": speedup, "policy": r.policy, "requests": r.requests,
        "finished": r.finished, "rejected": r.rejected, "ttft_p50_s": r.ttft_s.p50,
        "ttft_p90_s": r.ttft_s.p90, "ttft_p99_s": r.ttft_s.p99,
        "prefix_cache_hit_rate": r.prefix_cache_hit_rate,
        "busiest_replica_share": r.busiest_replica_share, "busy_fraction": r.busy_fraction,
        "preemptions": r.preemptions, "output_tokens_per_s": r.output_tokens_per_s,
    }  # fmt: skip


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def p90(trace: str, policy: str) -> float:  # at the highest load run
        top = max(r["speedup"] for r in rows if r["trace"] == trace)
        return float(next(r["ttft_p90_s"] for r in rows if r["trace"] == trace
                          and r["policy"] == policy and r["speedup"] == top))  # fmt: skip

    moon = p90("mooncake", "round_robin") / p90("mooncake", "prefix_affinity")
    azure = p90("azure_conv", "prefix_affinity") / p90("azure_conv", "least_outstanding")
    return {
        "mooncake_round_robin_over_prefix_affinity_p90": round(moon, 2),
        "mooncake_goal": ">= 2.0", "mooncake_met": moon >= 2.0,
        "azure_prefix_affinity_over_least_outstanding_p90": round(azure, 3),
        "azure_goal": "<= 1.05", "azure_met": azure <= 1.05,
    }  # fmt: skip


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    for axis, trace in zip(axes[:2], ("mooncake", "azure_conv"), strict=True):
        for policy in POLICIES:
            mine = sorted((r["speedup"], r["ttft_p90_s"]) for r in rows
                          if r["trace"] == trace and r["policy"] == policy)  # fmt: skip
            if mine:
                axis.plot(*zip(*mine, strict=True), marker="o", label=policy)
        axis.set(title=f"{trace}: TTFT p90 vs load ({REPLICAS} x H100)", xlabel="speed-up",
                 ylabel="TTFT p90 (s)", yscale="log")  # fmt: skip
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    top = max(r["speedup"] for r in rows if r["trace"] == "mooncake")
    last = [r for r in rows if r["trace"] == "mooncake" and r["speedup"] == top]
    names = [r["policy"] for r in last]
    axes[2].bar(names, [r["prefix_cache_hit_rate"] for r in last], label="prefix-cache hit rate")
    axes[2].plot(names, [r["busiest_replica_share"] * REPLICAS for r in last], "ko",
                 label="busiest replica's share x 8 (1 = even)")  # fmt: skip
    axes[2].set(title=f"mooncake at x{top:g}: cache hits and balance", ylim=(0, 1.6))
    axes[2].tick_params(axis="x", rotation=30)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one load, 1,000 requests each")
    args = parser.parse_args()
    machine = machine_info()
    rows = []
    for name, loads in LOADS.items():
        for speedup in loads[-1:] if args.quick else loads:
            for policy in POLICIES:
                rows.append(run(name, speedup, policy, 1000 if args.quick else None))
    data = {"machine": machine, "replicas": REPLICAS, "gpu": "H100-SXM",
            "model": "llama-3.1-8b bf16, max_model_len 131072", "loads": LOADS,
            "quick": args.quick, "runs": rows, "goals": goals(rows)}  # fmt: skip
    name = "routing-quick" if args.quick else "routing"
    print(write_json(name, data), data["goals"])
    plot(rows, RESULTS / f"{name}.png")


if __name__ == "__main__":
    main()
