"""Autoscaling cost: the autoscaler against the smallest static pool meeting the same SLO.

The Azure conversation and code traces (an hour each, replayed at their own pace) are made
denser by overlaying seeded copies of each shifted by at most a minute, so their rise and fall
over the hour stays as it was ("N users for each one in the trace"). They run through one pool
of llama-3-8b (bf16) on L40S GPUs, with a p95 TTFT SLO, twice:

- autoscaled: the fleet's real autoscaler, with the fleet file's defaults (waiting_per_replica,
  target 4), with target tracking of requests in flight and with target tracking of the
  observed p95 TTFT at half the SLO (settings below), cold starts of 30 s, drain before
  stop; each run starts at the size a first pass had after 5 minutes;
- static: the smallest fixed pool meeting the same SLO (found by search).

The SLO holds when no request is refused and the p95 TTFT of every 5-minute window of
arrivals is within it (the SLA alert's window), not only the hour's p95. Beside it, the other
common reading: the p95 TTFT over the whole trace within the SLO (what a monthly SLO report
computes), with its own smallest static pool and each autoscaler judged the same way
(`whole_trace` in the results). A whole-trace p95 lets a few windows run slow, so its static
pool is smaller or the same.

Goal: the autoscaled pool meets the SLO in at most 70 % of the static pool's GPU-hours, both
counted over the trace's span (`gpu_hours_with_tail` adds what the autoscaled pool spends
scaling down after the last request, which the static pool does not pay). The chart shows
replicas and the controller's queue (waiting requests, held ones included) over the hour for
each trace.

What any policy could save: the static search goes on below the smallest passing size until
a size meets the SLO in no window, so each 5-minute window has the fewest fixed replicas that
meet the SLO in it. A pool that had exactly that many in every window (perfect foresight, no
cold start, no drain) is the bound: no autoscaler resizing at most every 5 minutes spends
less. Its GPU-hours over the static pool's are `bound_ratio`.

    python bench/bench_autoscale.py            # both traces (about 20 minutes on 2 cores)
    python bench/bench_autoscale.py --traces conv
    python bench/bench_autoscale.py --traces conv --limit 3000   # a quick check of the wiring
    python bench/bench_autoscale.py --traces conv_day --autoscalers in_flight --no-bound

`conv_day` is not a recorded trace: it gives the conversation trace a day's shape, plainly
made up. Its first 30 minutes stand for a stretch of the day, repeated 1, 1, 2, 3, 4, 3, 2
and 1 times over (time-shifted copies, as above) in eight consecutive stretches: a night, a
rise to a peak four times as busy, and a fall. It shows what the autoscaler does where there
is something to save; the recorded hours have little (see bench/README.md). Each run's
results are merged into autoscale.json by trace.

Writes bench/results/autoscale.json and autoscale.png.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, os.path.dirname(__file__))

from sim_common import AZURE_CODE, AZURE_CONV, RESULTS, Timer, fleet, machine_info, write_json

from inferplane.sim import SimOptions, load_trace, simulate
from inferplane.sim.report import SimReport
from inferplane.sim.synthetic import head, repeat
from inferplane.sim.trace import Trace, TraceRequest

GPU = "L40S"
MODEL, CONTEXT = "llama-3-8b", 8192
MAX_REPLICAS = 20
WINDOW_S = 300.0  # the SLO holds in every 5-minute window, as the SLA alert checks it
TRACES = {  # name: (file, copies, p95 TTFT SLO in s); code prompts are twice as long
    "conv": (AZURE_CONV, 3, 1.0),
    "code": (AZURE_CODE, 2, 2.0),
    "conv_day": (AZURE_CONV, 4, 1.0),  # made up from the conversation trace: see above
}
DAY_COPIES = (1, 1, 2, 3, 4, 3, 2, 1)  # copies of the stretch in each stretch of the day
DAY_STRETCH_S = 1800.0
_STEPS = "up_window: 20s, down_window: 120s, up_step: 4, up_period: 30s, down_step: 1, "
_STEPS += "down_period: 60s"
# Per trace: the fleet file's defaults, and target tracking of requests in flight.
AUTOSCALE: dict[str, dict[str, str]] = {
    "default": {"conv": "{}", "code": "{}", "conv_day": "{}"},
    "in_flight": {
        "conv": f"{{metric: in_flight_per_replica, target: 32, {_STEPS}}}",
        "code": f"{{metric: in_flight_per_replica, target: 3, {_STEPS}}}",
        "conv_day": f"{{metric: in_flight_per_replica, target: 32, {_STEPS}}}",
    },
    "ttft_p95": {  # the observed p95 TTFT, aiming at half the SLO
        "conv": f"{{metric: ttft_p95, target: 0.5, {_STEPS}}}",
        "code": f"{{metric: ttft_p95, target: 1, {_STEPS}}}",
        "conv_day": f"{{metric: ttft_p95, target: 0.5, {_STEPS}}}",
    },
}
Judge = Callable[[SimReport, float], bool]


def dense(name: str, limit: int | None = None) -> Trace:
    path, copies, _ = TRACES[name]
    if name == "conv_day":
        trace = day_shaped(load_trace(path))
    else:
        trace = repeat([load_trace(path)], copies, max_shift_s=60.0, seed=0)
    return trace if limit is None else head(trace, limit)


def day_shaped(trace: Trace) -> Trace:
    """The trace's first DAY_STRETCH_S seconds, DAY_COPIES[k] shifted copies of it in the
    k-th stretch (see the module's docstring)."""
    first = Trace(tuple(r for r in trace.requests if r.arrival_s < DAY_STRETCH_S),
                  trace.start_epoch, trace.source, trace.block_tokens)  # fmt: skip
    day: list[TraceRequest] = []
    for k, copies in enumerate(DAY_COPIES):
        stretch = repeat([first], copies, max_shift_s=60.0, seed=k)
        day += [replace(r, arrival_s=r.arrival_s + k * DAY_STRETCH_S) for r in stretch.requests]
    return Trace(tuple(day), trace.start_epoch, f"day-shaped {trace.source}", trace.block_tokens)


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


def span_gpu_hours(report: SimReport, span_s: float) -> float:
    """GPU-hours from the trace's start to its last arrival, every phase counted (a starting or
    draining replica holds its GPU). Both pools are charged for the same hour: the report's
    own total adds the autoscaled pool's scale-down after the trace, which a static pool,
    settled at once, does not pay."""
    timeline = report.replica_timeline
    ends = [*(s["at_s"] for s in timeline[1:]), span_s]
    area = sum(_total(s) * max(0.0, min(end, span_s) - s["at_s"])
               for s, end in zip(timeline, ends, strict=True))  # fmt: skip
    return area / 3600


def _total(sample: dict[str, float]) -> float:
    return sample["starting"] + sample["ready"] + sample["draining"] + sample["sleeping"]


def worst(report: SimReport) -> float:
    return max((w["p95"] for w in report.ttft_windows), default=0.0)


def refused(report: SimReport) -> int:
    """Refusals a bigger pool would avoid (a prompt over the context is refused by any)."""
    return sum(n for why, n in report.rejected_by_reason.items()
               if not why.startswith("400"))  # fmt: skip


def meets(report: SimReport, slo: float) -> bool:
    """The SLO as the SLA alert judges it: every 5-minute window's p95 within it."""
    return refused(report) == 0 and worst(report) <= slo


def meets_whole(report: SimReport, slo: float) -> bool:
    """The SLO as a report over the whole trace judges it: one p95 of every request."""
    return refused(report) == 0 and report.ttft_s.p95 <= slo


def smallest_static(
    trace: Trace, slo: float, start: int, down_to_bound: bool = True, *,
    judge: Judge = meets, tried: dict[int, SimReport] | None = None,
) -> tuple[int, dict[int, SimReport]]:  # fmt: skip
    """The fewest fixed replicas meeting the SLO as `judge` reads it, searched from `start`,
    and every size run (`tried`, shared between readings so no size runs twice): the search
    goes on down until a size meets the SLO in no window (for the bound)."""
    tried = {} if tried is None else tried

    def probe(size: int) -> SimReport:
        if size not in tried:
            tried[size] = run(trace, size)
        return tried[size]

    size = max(1, start)
    while not judge(probe(size), slo) and size < MAX_REPLICAS:
        size += 1
    while size > 1 and judge(probe(size - 1), slo):
        size -= 1
    low = min(tried)
    while down_to_bound and low > 1 and any(p95 <= slo for p95 in window_p95s(probe(low))):
        low -= 1
    return size, tried


def window_p95s(report: SimReport) -> list[float]:
    return [w["p95"] for w in report.ttft_windows]


def bound(tried: dict[int, SimReport], static: int, span_s: float, slo: float) -> dict[str, Any]:
    """Per 5-minute window, the fewest fixed replicas meeting the SLO in it; their
    replica-seconds over the static pool's (a lower bound: no cold start, no drain)."""
    starts = [w["from_s"] for w in tried[static].ttft_windows]
    ends = [*starts[1:], span_s]
    sizes = [min((n for n, r in tried.items() if window_p95s(r)[i] <= slo), default=static)
             for i in range(len(starts))]  # fmt: skip
    spent = sum(n * (end - start) for n, start, end in zip(sizes, starts, ends, strict=True))
    return {"window_replicas": sizes, "bound_ratio": round(spent / (static * span_s), 3)}


def autoscaled(trace: Trace, autoscale: str) -> SimReport:
    """The autoscaler as if it had been running before the trace: a first pass from one
    replica, then the run from the size that pass had reached after five minutes."""
    first = run(trace, None, autoscale)
    settled = [s for s in first.replica_timeline if s["at_s"] <= WINDOW_S][-1]
    size = int(settled["starting"] + settled["ready"])
    return run(trace, None, autoscale, initial=size)


def compare(name: str, limit: int | None, autoscalers: list[str], with_bound: bool
            ) -> dict[str, Any]:  # fmt: skip
    trace, slo = dense(name, limit), TRACES[name][2]
    span = trace.span_s
    print(f"{name}: {len(trace):,} requests over {trace.span_s:,.0f} s, SLO {slo:g} s", flush=True)
    autos = {key: autoscaled(trace, AUTOSCALE[key][name]) for key in autoscalers}
    best = min(autos, key=lambda k: (not meets(autos[k], slo), span_gpu_hours(autos[k], span)))
    auto = autos[best]
    size, tried = smallest_static(trace, slo, round(auto.replicas_mean), with_bound)
    static = tried[size]
    ratio = span_gpu_hours(auto, span) / span_gpu_hours(static, span)
    return {
        "trace": name, "copies": TRACES[name][1], "requests": len(trace),
        "span_s": round(trace.span_s, 1), "slo_p95_ttft_s": slo,
        "static_replicas": size, "static_gpu_hours": round(span_gpu_hours(static, span), 3),
        "static_worst_window_p95_s": worst(static), "static_hour_p95_s": static.ttft_s.p95,
        "static_search_worst_p95_s": {n: worst(r) for n, r in sorted(tried.items())},
        "static_window_p95_s": {n: window_p95s(r) for n, r in sorted(tried.items())},
        **(bound(tried, size, trace.span_s, slo) if with_bound else {}),
        "autoscalers": {key: {
            "gpu_hours_with_tail": round(r.gpu_seconds / 3600, 3),
            "gpu_hours": round(span_gpu_hours(r, span), 3), "worst_window_p95_s": worst(r),
            "hour_p95_s": r.ttft_s.p95, "replicas_mean": r.replicas_mean,
            "replicas_max": r.replicas_max, "refused": refused(r), "slo_met": meets(r, slo),
            "gpu_hours_ratio": round(span_gpu_hours(r, span) / span_gpu_hours(static, span), 3),
            "scale_events": len(r.scale_events)} for key, r in autos.items()},
        "best": best, "autoscaled_gpu_hours": round(span_gpu_hours(auto, span), 3),
        "autoscaled_worst_window_p95_s": worst(auto), "gpu_hours_ratio": round(ratio, 3),
        "goal": "ratio <= 0.70 with the SLO met", "met": meets(auto, slo) and ratio <= 0.70,
        "whole_trace": whole_trace(trace, slo, autos, size, tried),
        "replica_timeline": auto.replica_timeline, "queue_timeline": auto.queue_timeline,
        "ttft_windows": auto.ttft_windows, "static_ttft_windows": static.ttft_windows,
    }  # fmt: skip


def whole_trace(trace: Trace, slo: float, autos: dict[str, SimReport], window_static: int,
                tried: dict[int, SimReport]) -> dict[str, Any]:  # fmt: skip
    """The same comparison with the SLO read as one p95 over the whole trace: its smallest
    static pool (searched down from the per-window one, which meets it too) and each
    autoscaler's GPU-hours over that pool's."""
    span = trace.span_s
    size, _ = smallest_static(trace, slo, window_static, False, judge=meets_whole, tried=tried)
    static_hours = span_gpu_hours(tried[size], span)
    ratios = {key: span_gpu_hours(r, span) / static_hours for key, r in autos.items()}
    best = min(autos, key=lambda k: (not meets_whole(autos[k], slo), ratios[k]))
    print(
        f"  whole-trace p95: static {size}, {best} {ratios[best]:.3f} of its GPU-hours, "
        f"SLO {'met' if meets_whole(autos[best], slo) else 'missed'}",
        flush=True,
    )
    return {
        "reading": "p95 TTFT over the whole trace <= SLO, no refusals",
        "static_replicas": size, "static_gpu_hours": round(static_hours, 3),
        "static_p95_s": tried[size].ttft_s.p95,
        "static_search_p95_s": {n: r.ttft_s.p95 for n, r in sorted(tried.items())},
        "autoscalers": {key: {"p95_s": r.ttft_s.p95, "slo_met": meets_whole(r, slo),
                              "gpu_hours_ratio": round(ratios[key], 3)}
                        for key, r in autos.items()},
        "best": best, "gpu_hours_ratio": round(ratios[best], 3),
        "slo_met": meets_whole(autos[best], slo),
        "met": meets_whole(autos[best], slo) and ratios[best] <= 0.70,
    }  # fmt: skip


def plot(results: list[dict[str, Any]], name: str) -> None:
    fig, axes = plt.subplots(len(results), 1, figsize=(12, 4.2 * len(results)), squeeze=False)
    for axis, result in zip(axes[:, 0], results, strict=True):
        timeline = result["replica_timeline"]
        times = [s["at_s"] / 60 for s in timeline] + [result["span_s"] / 60]
        sizes = [s["starting"] + s["ready"] + s["draining"] + s["sleeping"] for s in timeline]
        axis.step(times, [*sizes, sizes[-1]], where="post", label="replicas (autoscaled)")
        static = result["static_replicas"]
        axis.axhline(static, color="gray", linestyle="--",
                     label=f"smallest static pool meeting the SLO ({static})")  # fmt: skip
        if "whole_trace" in result:  # results kept from before the second reading lack it
            whole = result["whole_trace"]["static_replicas"]
            axis.axhline(whole, color="gray", linestyle=":",
                         label=f"smallest static pool, whole-trace p95 ({whole})")  # fmt: skip
        axis.set(xlabel="minutes", ylabel="replicas",
                 title=f"{result['trace']} x{result['copies']} on {GPU}, {result['best']}: "
                 f"{result['gpu_hours_ratio']:.0%} of the static GPU-hours; worst 5-min p95 "
                 f"TTFT {result['autoscaled_worst_window_p95_s']:.2f} s "
                 f"(SLO {result['slo_p95_ttft_s']:g} s)")  # fmt: skip
        if "window_replicas" in result:
            _plot_bound(axis, result)
        queue = axis.twinx()
        samples = result["queue_timeline"]
        queue.plot([q["at_s"] / 60 for q in samples], [q["waiting"] for q in samples],
                   color="tab:red", alpha=0.5, linewidth=0.8, label="waiting requests")  # fmt: skip
        queue.set_ylabel("waiting requests", color="tab:red")
        axis.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)


def _plot_bound(axis: Any, result: dict[str, Any]) -> None:
    starts = [w["from_s"] / 60 for w in result["static_ttft_windows"]]
    fewest = result["window_replicas"]
    axis.step([*starts, result["span_s"] / 60], [*fewest, fewest[-1]], where="post",
              color="tab:green", linestyle=":",
              label=f"fewest meeting the SLO per 5-min window (bound: "
              f"{result['bound_ratio']:.0%} of static)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", default="conv,code")
    parser.add_argument("--limit", type=int, help="the first N requests of each trace only")
    parser.add_argument("--autoscalers", default=",".join(AUTOSCALE))
    parser.add_argument("--no-bound", action="store_true", help="skip the per-window bound")
    args = parser.parse_args()
    machine, autoscalers = machine_info(), args.autoscalers.split(",")
    fresh = [compare(name, args.limit, autoscalers, not args.no_bound)
             for name in args.traces.split(",")]  # fmt: skip
    name = "autoscale" if args.limit is None else "autoscale-quick"
    path = RESULTS / f"{name}.json"
    kept = json.loads(path.read_text())["results"] if path.exists() else []
    ran = {r["trace"] for r in fresh}
    results = [r for r in kept if r["trace"] not in ran] + fresh
    data = {"machine": machine, "gpu": GPU, "model": f"{MODEL} bf16", "slo_window_s": WINDOW_S,
            "autoscale": AUTOSCALE, "cold_start_s": 30.0, "limit": args.limit,
            "results": results}  # fmt: skip
    print(write_json(name, data))
    plot(results, name)


if __name__ == "__main__":
    main()
