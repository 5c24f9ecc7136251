"""Autoscaling cost: the autoscaler against the smallest static pool meeting the same SLO.

The Azure conversation and code traces (an hour each, replayed at their own pace) are made
denser by overlaying seeded copies of each shifted by at most a minute, so their rise and fall
over the hour stays as it was ("N users for each one in the trace"). They run through one pool
of llama-3-8b (bf16) on L40S GPUs, with a p95 TTFT SLO, twice:

- autoscaled: the fleet's real autoscaler (waiting_per_replica, windows and steps below),
  cold starts of 30 s, drain before stop;
- static: the smallest fixed pool whose p95 TTFT meets the same SLO (found by search).

Goal: the autoscaled pool meets the SLO in at most 70 % of the static pool's GPU-hours. The
chart shows replicas and the controller's queue (waiting requests, held ones included) over
the hour for each trace.

    python bench/bench_autoscale.py            # both traces (about 20 minutes on 2 cores)
    python bench/bench_autoscale.py --traces conv

Writes bench/results/autoscale.json and autoscale.png.
"""

import argparse
import os
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, os.path.dirname(__file__))

from sim_common import AZURE_CODE, AZURE_CONV, RESULTS, Timer, fleet, machine_info, write_json

from inferplane.sim import SimOptions, load_trace, simulate
from inferplane.sim.report import SimReport
from inferplane.sim.synthetic import repeat
from inferplane.sim.trace import Trace

GPU = "L40S"
MODEL, CONTEXT = "llama-3-8b", 8192
MAX_REPLICAS = 20
WINDOW_S = 300.0  # the SLO holds in every 5-minute window, as the SLA alert checks it
TRACES = {  # name: (file, copies, p95 TTFT SLO in s); code prompts are twice as long
    "conv": (AZURE_CONV, 3, 1.0),
    "code": (AZURE_CODE, 2, 2.0),
}
_STEPS = "up_window: 20s, down_window: 120s, up_step: 4, up_period: 30s, down_step: 1, "
_STEPS += "down_period: 60s"
# Per trace: the fleet file's defaults, and target tracking of requests in flight.
AUTOSCALE: dict[str, dict[str, str]] = {
    "default": {"conv": "{}", "code": "{}"},
    "in_flight": {
        "conv": f"{{metric: in_flight_per_replica, target: 32, {_STEPS}}}",
        "code": f"{{metric: in_flight_per_replica, target: 3, {_STEPS}}}",
    },
}


def dense(name: str) -> Trace:
    path, copies, _ = TRACES[name]
    return repeat([load_trace(path)], copies, max_shift_s=60.0, seed=0)


def run(trace: Trace, replicas: int | None, autoscale: str = "{}", initial: int | None = None
        ) -> SimReport:  # fmt: skip
    bounds = f"{{min: 1, max: {MAX_REPLICAS}}}" if replicas is None else (
        f"{{min: {replicas}, max: {replicas}}}")  # fmt: skip
    pool = fleet(MODEL, CONTEXT, bounds, autoscale, GPU)
    with Timer() as timer:
        report = simulate(pool, "chat", trace, GPU, "least_outstanding",
                          options=SimOptions(initial_replicas=initial))  # fmt: skip
    label = "autoscaled" if replicas is None else f"static {replicas}"
    print(f"  {label:12} p95 TTFT {report.ttft_s.p95:6.3f} s, worst 5-min p95 {worst(report):7.3f}"
          f" s  GPU-h {report.gpu_seconds / 3600:6.2f}  replicas mean {report.replicas_mean:5.2f} "
          f"max {report.replicas_max:2}  ({timer.wall_s:.0f} s)", flush=True)  # fmt: skip
    return report


def worst(report: SimReport) -> float:
    return max((w["p95"] for w in report.ttft_windows), default=0.0)


def refused(report: SimReport) -> int:
    """Refusals a bigger pool would avoid (a prompt over the context is refused by any)."""
    return sum(n for why, n in report.rejected_by_reason.items()
               if not why.startswith("400"))  # fmt: skip


def meets(report: SimReport, slo: float) -> bool:
    return refused(report) == 0 and worst(report) <= slo


def smallest_static(
    trace: Trace, slo: float, start: int
) -> tuple[int, SimReport, dict[int, float]]:
    """The fewest fixed replicas meeting the SLO, searched from `start` (each size's worst)."""
    tried: dict[int, SimReport] = {}

    def probe(size: int) -> SimReport:
        if size not in tried:
            tried[size] = run(trace, size)
        return tried[size]

    size = max(1, start)
    while not meets(probe(size), slo) and size < MAX_REPLICAS:
        size += 1
    while size > 1 and meets(probe(size - 1), slo):
        size -= 1
    return size, tried[size], {n: worst(r) for n, r in sorted(tried.items())}


def autoscaled(trace: Trace, autoscale: str) -> SimReport:
    """The autoscaler as if it had been running before the trace: a first pass from one
    replica, then the run from the size that pass had reached after five minutes."""
    first = run(trace, None, autoscale)
    settled = [s for s in first.replica_timeline if s["at_s"] <= WINDOW_S][-1]
    size = int(settled["starting"] + settled["ready"])
    return run(trace, None, autoscale, initial=size)


def compare(name: str) -> dict[str, Any]:
    trace, slo = dense(name), TRACES[name][2]
    print(f"{name}: {len(trace):,} requests over {trace.span_s:,.0f} s, SLO {slo:g} s", flush=True)
    autos = {key: autoscaled(trace, specs[name]) for key, specs in AUTOSCALE.items()}
    best = min(autos, key=lambda key: (not meets(autos[key], slo), autos[key].gpu_seconds))
    auto = autos[best]
    size, static, searched = smallest_static(trace, slo, round(auto.replicas_mean))
    ratio = auto.gpu_seconds / static.gpu_seconds
    return {
        "trace": name, "copies": TRACES[name][1], "requests": len(trace),
        "span_s": round(trace.span_s, 1), "slo_p95_ttft_s": slo,
        "static_replicas": size, "static_gpu_hours": round(static.gpu_seconds / 3600, 3),
        "static_worst_window_p95_s": worst(static), "static_hour_p95_s": static.ttft_s.p95,
        "static_search_worst_p95_s": searched,
        "autoscalers": {key: {
            "gpu_hours": round(r.gpu_seconds / 3600, 3), "worst_window_p95_s": worst(r),
            "hour_p95_s": r.ttft_s.p95, "replicas_mean": r.replicas_mean,
            "replicas_max": r.replicas_max, "refused": refused(r), "slo_met": meets(r, slo),
            "gpu_hours_ratio": round(r.gpu_seconds / static.gpu_seconds, 3),
            "scale_events": len(r.scale_events)} for key, r in autos.items()},
        "best": best, "autoscaled_gpu_hours": round(auto.gpu_seconds / 3600, 3),
        "autoscaled_worst_window_p95_s": worst(auto), "gpu_hours_ratio": round(ratio, 3),
        "goal": "ratio <= 0.70 with the SLO met", "met": meets(auto, slo) and ratio <= 0.70,
        "replica_timeline": auto.replica_timeline, "queue_timeline": auto.queue_timeline,
        "ttft_windows": auto.ttft_windows, "static_ttft_windows": static.ttft_windows,
    }  # fmt: skip


def plot(results: list[dict[str, Any]]) -> None:
    fig, axes = plt.subplots(len(results), 1, figsize=(12, 4.2 * len(results)), squeeze=False)
    for axis, result in zip(axes[:, 0], results, strict=True):
        timeline = result["replica_timeline"]
        times = [s["at_s"] / 60 for s in timeline] + [result["span_s"] / 60]
        sizes = [s["starting"] + s["ready"] + s["draining"] + s["sleeping"] for s in timeline]
        axis.step(times, [*sizes, sizes[-1]], where="post", label="replicas (autoscaled)")
        static = result["static_replicas"]
        axis.axhline(static, color="gray", linestyle="--",
                     label=f"smallest static pool meeting the SLO ({static})")  # fmt: skip
        axis.set(xlabel="minutes", ylabel="replicas",
                 title=f"{result['trace']} x{result['copies']} on {GPU}, {result['best']}: "
                 f"{result['gpu_hours_ratio']:.0%} of the static GPU-hours; worst 5-min p95 "
                 f"TTFT {result['autoscaled_worst_window_p95_s']:.2f} s "
                 f"(SLO {result['slo_p95_ttft_s']:g} s)")  # fmt: skip
        queue = axis.twinx()
        samples = result["queue_timeline"]
        queue.plot([q["at_s"] / 60 for q in samples], [q["waiting"] for q in samples],
                   color="tab:red", alpha=0.5, linewidth=0.8, label="waiting requests")  # fmt: skip
        queue.set_ylabel("waiting requests", color="tab:red")
        axis.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "autoscale.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", default="conv,code")
    args = parser.parse_args()
    machine = machine_info()
    results = [compare(name) for name in args.traces.split(",")]
    data = {"machine": machine, "gpu": GPU, "model": f"{MODEL} bf16", "slo_window_s": WINDOW_S,
            "autoscale": AUTOSCALE, "cold_start_s": 30.0, "results": results}  # fmt: skip
    print(write_json("autoscale", data))
    plot(results)


if __name__ == "__main__":
    main()
