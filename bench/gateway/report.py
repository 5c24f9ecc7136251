"""Turns the gateway benchmark's raw measurements into ratios, pass/fail and a chart."""

import copy
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

VS_VLLM_ROUTER = 0.5  # inferplane req/s >= 0.5 x vllm-router's
VS_LITELLM = 50.0  # inferplane req/s >= 50 x LiteLLM's (its best configuration)
ADDED_TTFB_P50_MS = 1.0
ADDED_TTFB_P99_MS = 5.0
ONE_WORKER_RPS = 3200.0  # 5 x vLLM production-stack's Python router on the reference machine
GATEWAYS = ("inferplane-1w", "inferplane-1w-noledger", "inferplane-2w")
# the LiteLLM run each gateway run is compared with (same worker count)
LITELLMS = ("litellm-1w", "litellm-1w", "litellm-2w")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _median_of(rows: list[dict[str, Any]], kind: str, q: str) -> float | None:
    values = [r["stream"][kind][q] for r in rows if kind in r["stream"]]
    return round(statistics.median(values), 3) if values else None


def summarize(entry: dict[str, Any]) -> None:
    """One figure per load from a target's rounds: the median round (each round is listed)."""
    rows = entry.get("rounds", [])
    if not rows:
        return
    per_round = [r["rps"]["requests_per_s"] for r in rows]
    entry["rps"] = {
        "requests_per_s": round(statistics.median(per_round), 1),
        "best": max(per_round),
        "per_round": per_round,
        "errors": sum(r["rps"]["errors"] for r in rows),
        "latency_p50_ms": statistics.median(r["rps"]["latency_p50_ms"] for r in rows),
    }
    stream: dict[str, Any] = {
        "ok": sum(r["stream"].get("ok", 0) for r in rows),
        "errors": sum(r["stream"].get("errors", 0) for r in rows),
    }
    for kind in ("ttfb_ms", "ttlb_ms"):
        p50, p99 = _median_of(rows, kind, "p50"), _median_of(rows, kind, "p99")
        if p50 is not None:
            stream[kind] = {"p50": p50, "p99": p99}
    entry["stream"] = stream


def best_round_view(results: dict[str, Any]) -> dict[str, Any]:
    """The same results with each figure taken from its best round instead of the median:
    neighbours' work only ever slows a target down, so this is the least disturbed view."""
    view = copy.deepcopy(results)
    for entry in view.values():
        rows = entry.get("rounds", [])
        if not rows:
            continue
        entry["rps"]["requests_per_s"] = max(r["rps"]["requests_per_s"] for r in rows)
        for kind in ("ttfb_ms", "ttlb_ms"):
            values = [r["stream"][kind] for r in rows if kind in r["stream"]]
            if values:
                entry["stream"][kind] = {q: min(v[q] for v in values) for q in ("p50", "p99")}
    add_deltas(view)
    return view


def _rps(results: dict[str, Any], name: str) -> float | None:
    entry = results.get(name, {})
    value = entry.get("rps", {}).get("requests_per_s")
    return float(value) if value else None


def add_deltas(results: dict[str, Any]) -> None:
    """Added time to first / last byte vs direct, per target, in ms."""
    base = results.get("direct", {}).get("stream", {})
    if "ttfb_ms" not in base:
        return
    for entry in results.values():
        stream = entry.get("stream", {})
        if "ttfb_ms" not in stream:
            continue
        entry["added_ms"] = {
            f"{kind}_{q}": round(stream[f"{kind}_ms"][q] - base[f"{kind}_ms"][q], 3)
            for kind in ("ttfb", "ttlb")
            for q in ("p50", "p99")
        }


def _best_litellm(results: dict[str, Any]) -> float | None:
    values = [v for n in ("litellm-1w", "litellm-2w") if (v := _rps(results, n))]
    return max(values) if values else None


def _check(value: float | None, bound: float, above: bool) -> dict[str, Any]:
    if value is None:
        return {"value": None, "bound": bound, "pass": None}
    ok = value >= bound if above else value <= bound
    return {"value": round(value, 3), "bound": bound, "pass": ok}


def _ratio(rps: float, base: float | None) -> float | None:
    return rps / base if base else None


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Every target of the issue, for each gateway configuration that ran.

    LiteLLM is compared at the same worker count as the gateway configuration (LiteLLM's
    default is 1 worker). The 3,200 req/s bound for one worker was set where direct did about
    24k req/s; its scaled forms are kept beside it for information, not as verdicts.
    """
    router = _rps(results, "vllm-router")
    out: dict[str, Any] = {}
    for name, litellm_name in zip(GATEWAYS, LITELLMS, strict=True):
        rps = _rps(results, name)
        if rps is None:
            continue
        added = results[name].get("added_ms", {})
        litellm = _rps(results, litellm_name)
        checks = {
            "rps_vs_vllm_router": _check(_ratio(rps, router), VS_VLLM_ROUTER, True),
            f"rps_vs_{litellm_name}": _check(_ratio(rps, litellm), VS_LITELLM, True),
            "added_ttfb_p50_ms": _check(added.get("ttfb_p50"), ADDED_TTFB_P50_MS, False),
            "added_ttfb_p99_ms": _check(added.get("ttfb_p99"), ADDED_TTFB_P99_MS, False),
        }
        if name.startswith("inferplane-1w"):
            checks["one_worker_rps"] = _check(rps, ONE_WORKER_RPS, True)
            checks["info_one_worker_bound_scaled"] = _scaled_bounds(results)
        out[name] = checks
    return out


def _scaled_bounds(results: dict[str, Any]) -> dict[str, float]:
    """3,200 req/s rescaled by how much faster each baseline ran here than where it was set."""
    reference = {"direct": 24000.0, "nginx": 15000.0, "vllm-router": 7500.0}
    return {
        f"by_{name}": round(ONE_WORKER_RPS * value / reference[name])
        for name in reference
        if (value := _rps(results, name))
    }


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Each target's req/s as a fraction of direct, vllm-router and LiteLLM."""
    bases = {
        "direct": _rps(results, "direct"),
        "vllm-router": _rps(results, "vllm-router"),
        "litellm_best": _best_litellm(results),
    }
    table: dict[str, Any] = {}
    for name in results:
        rps = _rps(results, name)
        if rps is not None:
            table[name] = {f"vs_{b}": round(rps / v, 3) for b, v in bases.items() if v}
    return table


def plot(results: dict[str, Any], labels: dict[str, str], path: Path) -> None:
    names = [n for n in results if _rps(results, n)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    values = [_rps(results, n) or 0.0 for n in names]
    bars = left.bar([labels[n] for n in names], values, color="#4477aa")
    left.bar_label(bars, fmt="%.0f", fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("requests/s (log scale)")
    left.set_title("Non-streaming chat, concurrency 32")
    left.tick_params(axis="x", rotation=30, labelsize=8)
    streamed = [n for n in names if "added_ms" in results[n] and n != "direct"]
    xs = range(len(streamed))
    p50 = [results[n]["added_ms"]["ttfb_p50"] for n in streamed]
    p99 = [results[n]["added_ms"]["ttfb_p99"] for n in streamed]
    low = right.bar([x - 0.2 for x in xs], p50, width=0.4, label="added TTFB p50", color="#228833")
    high = right.bar([x + 0.2 for x in xs], p99, width=0.4, label="added TTFB p99", color="#ccbb44")
    for bars in (low, high):
        right.bar_label(bars, fmt="%.2g", fontsize=7)
    right.set_xticks(list(xs), [labels[n] for n in streamed], rotation=30, fontsize=8)
    right.set_yscale("symlog", linthresh=1.0)
    right.axhline(ADDED_TTFB_P50_MS, color="#228833", linestyle=":", linewidth=1)
    right.axhline(ADDED_TTFB_P99_MS, color="#ccbb44", linestyle=":", linewidth=1)
    right.set_ylabel("ms over direct (symlog)")
    right.set_title("Streaming (20 chunks over 180 ms), concurrency 32")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
