"""The gateway benchmark: inferplane's gateway against nginx, vllm-router and LiteLLM.

A fast mock OpenAI upstream runs on loopback; the same load generator sends the same load
straight to it ("direct"), through inferplane's gateway (1 and 2 worker processes), and through
each peer in turn. Two loads, both at concurrency 32: small non-streaming chat requests (wrk,
requests/s), and streaming requests whose upstream sends 20 chunks over 180 ms (added time to
first and last byte vs direct). Everything shares this machine's cores, and every target runs
under the same setup. Peers are installed on first use (see targets.py).

Writes bench/results/gateway.json and gateway.png. Run from the repository root:

    python bench/gateway/run.py            # full run, about 6-8 minutes once peers are installed
    python bench/gateway/run.py --quick    # short loads, a smoke check (about 2-3 minutes)
    python bench/gateway/run.py --only direct nginx
"""

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
import report  # noqa: E402
import targets  # noqa: E402

RESULTS = HERE.parent / "results"
UPSTREAM_PORT = 9100
FULL = loads.LoadPlan(warm_s=10, measure_s=10, streams=640)
QUICK = loads.LoadPlan(warm_s=2, measure_s=5, streams=256)
NICE = -10  # the whole run above neighbours' priority; the same for every target


def renice() -> int | None:
    """Raise the harness (and all it starts) above other work on the machine, when root."""
    try:
        os.nice(NICE)
    except OSError:
        return None
    return NICE


def measure(target: targets.Target, plan: loads.LoadPlan) -> dict[str, Any]:
    """Start the target, run both loads through it, stop it."""
    entry: dict[str, Any] = {"label": target.label, "workers": target.workers}
    target.install()
    entry["version"] = target.version()
    tmp = targets.scratch_dir(target.name)
    argv = target.command(UPSTREAM_PORT, tmp)
    process = loads.start(argv, tmp / "out.log", target.env) if argv else None
    try:
        _run_loads(target, plan, process, entry)
    except Exception as exc:  # recorded with the target's log tail, and the run goes on
        traceback.print_exc()
        entry["error"] = repr(exc)[:500]
    finally:
        if process is not None:
            loads.stop(process)
            entry["log_tail"] = _tail(tmp / "out.log")
    return entry


def _run_loads(
    target: targets.Target, plan: loads.LoadPlan, process: Any, entry: dict[str, Any]
) -> None:
    started = time.monotonic()
    loads.wait_ready(target.url(), process, target.ready_timeout_s)
    entry["startup_s"] = round(time.monotonic() - started, 1)
    entry["loadavg_before"] = loads.loadavg()
    entry["rps"] = loads.requests_per_s(target.url(), plan)
    print(f"  {entry['rps']['requests_per_s']:.0f} req/s", flush=True)
    entry["stream"] = loads.streaming(target.url(), plan)
    print(f"  stream {json.dumps(entry['stream'].get('ttfb_ms'))}", flush=True)


def _tail(path: Path, lines: int = 5) -> list[str]:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace").splitlines()[-lines:]
    return []


def run_all(names: list[str] | None, plan: loads.LoadPlan) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for target in targets.all_targets(UPSTREAM_PORT):
        if names and target.name not in names:
            continue
        print(f"== {target.label}", flush=True)
        try:
            results[target.name] = measure(target, plan)
        except Exception as exc:  # a peer that cannot install or run is recorded, not fatal
            traceback.print_exc()
            results[target.name] = {"label": target.label, "error": repr(exc)[:500]}
    return results


def write(results: dict[str, Any], plan: loads.LoadPlan, quick: bool, nice: int | None) -> None:
    report.add_deltas(results)
    labels = {name: entry["label"] for name, entry in results.items()}
    doc = {
        "benchmark": "gateway",
        "quick": quick,
        "load": {
            "concurrency": loads.CONCURRENCY,
            "warm_s": plan.warm_s,
            "measure_s": plan.measure_s,
            "streams": plan.streams,
            "stream_shape": "20 SSE chunks, 9 ms apart, then [DONE] (180 ms)",
            "rps_tool": "wrk -t1 -c32",
            "stream_tool": "aiohttp on uvloop",
        },
        "machine": {**report.machine(), "nice": nice},
        "targets": results,
        "ratios": report.ratios(results),
        "verdicts": report.verdicts(results),
    }
    suffix = "_quick" if quick else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"gateway{suffix}.json").write_text(json.dumps(doc, indent=2) + "\n")
    report.plot(results, labels, RESULTS / f"gateway{suffix}.png")
    print(json.dumps({"ratios": doc["ratios"], "verdicts": doc["verdicts"]}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short loads (a smoke check)")
    parser.add_argument("--only", nargs="*", help="target names (direct is always run)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    names = sorted({"direct", *args.only}) if args.only else None
    nice = renice()
    targets.apt_install("wrk")
    tmp = targets.scratch_dir("upstream")
    upstream = loads.start(
        [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(UPSTREAM_PORT)],
        tmp / "out.log",
    )
    try:
        loads.wait_ready(f"http://127.0.0.1:{UPSTREAM_PORT}{targets.CHAT_PATH}", upstream, 20)
        results = run_all(names, plan)
    finally:
        loads.stop(upstream)
    write(results, plan, args.quick, nice)


if __name__ == "__main__":
    main()
