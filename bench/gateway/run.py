"""The gateway benchmark: inferplane's gateway against nginx, vllm-router and LiteLLM.

A fast mock OpenAI upstream runs on loopback; the same load generator sends the same load
straight to it ("direct"), through inferplane's gateway (1 and 2 worker processes), and through
each peer in turn. Two loads, both at concurrency 32: small non-streaming chat requests (wrk,
requests/s), and streaming requests whose upstream sends 20 chunks over 180 ms (added time to
first and last byte vs direct). Everything shares this machine's cores, and every target runs
under the same setup. Peers are installed on first use (see targets.py).

Writes bench/results/gateway.json and gateway.png. Run from the repository root:

    python bench/gateway/run.py            # full run, about 6-7 minutes once peers are installed
    python bench/gateway/run.py --quick    # one short round, a smoke check (about 2 minutes)
    python bench/gateway/run.py --only direct nginx
    python bench/gateway/run.py --rounds 2 --out /some/scratch/folder   # a trial run
"""

import argparse
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
import report  # noqa: E402
import targets  # noqa: E402

RESULTS = HERE.parent / "results"
UPSTREAM_PORT = 9100
FULL = loads.LoadPlan(warm_s=5, measure_s=4, streams=256, stream_max_s=6.0, rounds=5)
QUICK = loads.LoadPlan(warm_s=2, measure_s=3, streams=160, stream_max_s=4.0, rounds=1)
NICE = -10  # the whole run above neighbours' priority; the same for every target


@dataclass
class Live:
    """A target that started, its process (None for direct) and what was measured on it."""

    target: targets.Target
    process: subprocess.Popen[bytes] | None
    log: Path
    entry: dict[str, Any]


def check_ports_free(ports: list[int]) -> None:
    """A stale process on a benchmark port would be measured in place of the real target."""
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                sys.exit(f"port {port} is in use: stop whatever listens there and run again")


def renice() -> int | None:
    """Raise the harness (and all it starts) above other work on the machine, when root."""
    try:
        os.nice(NICE)
    except OSError:
        return None
    return NICE


def launch(target: targets.Target) -> Live:
    """Install if needed and start the target (not yet waiting for it to be ready)."""
    entry: dict[str, Any] = {"label": target.label, "workers": target.workers}
    target.install()
    entry["version"] = target.version()
    tmp = targets.scratch_dir(target.name)
    argv = target.command(UPSTREAM_PORT, tmp)
    entry["command"] = " ".join(Path(a).name if "/" in a else a for a in argv)
    process = loads.start(argv, tmp / "out.log", target.env) if argv else None
    return Live(target, process, tmp / "out.log", entry)


def start_all(names: list[str] | None) -> tuple[list[Live], dict[str, Any]]:
    """Start every target at once (idle ones cost little), then wait for each to answer."""
    failed: dict[str, Any] = {}
    started: list[Live] = []
    for target in targets.all_targets(UPSTREAM_PORT):
        if names and target.name not in names:
            continue
        try:
            started.append(launch(target))
        except Exception as exc:  # a peer that cannot install is recorded, not fatal
            traceback.print_exc()
            failed[target.name] = {"label": target.label, "error": repr(exc)[:500]}
    live = [one for one in started if _ready(one)]
    for one in started:
        if one not in live:
            _stop(one)
            failed[one.target.name] = one.entry
    return live, failed


def _ready(one: Live) -> bool:
    began = time.monotonic()
    try:
        loads.wait_ready(one.target.url(), one.process, one.target.ready_timeout_s)
    except RuntimeError as exc:
        print(f"== {one.target.label}: {exc}", flush=True)
        one.entry["error"] = str(exc)
        return False
    one.entry["ready_after_s"] = round(time.monotonic() - began, 1)
    return True


def _stop(one: Live) -> None:
    if one.process is not None:
        loads.stop(one.process)
        scratch = str(one.log.parent)  # the run's own temp dir says nothing: leave it out
        one.entry["log_tail"] = [line.replace(scratch, "TMP") for line in _tail(one.log)]


def _tail(path: Path, lines: int = 5) -> list[str]:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace").splitlines()[-lines:]
    return []


def one_round(one: Live, plan: loads.LoadPlan) -> dict[str, Any]:
    url = one.target.url()
    row: dict[str, Any] = {"loadavg": loads.loadavg()}
    row["rps"] = loads.wrk(url, plan.measure_s)
    row["stream"] = loads.streaming(url, plan.streams, plan.stream_max_s)
    ttfb = row["stream"].get("ttfb_ms", {})
    print(
        f"  {one.target.label}: {row['rps']['requests_per_s']:.0f} req/s, "
        f"ttfb p50 {ttfb.get('p50')} p99 {ttfb.get('p99')} ms",
        flush=True,
    )
    return row


def measure(live: list[Live], plan: loads.LoadPlan) -> None:
    """A warm-up per target, then rounds that go over all targets in turn."""
    for one in live:
        print(f"== warm-up {one.target.label}", flush=True)
        loads.wrk(one.target.url(), plan.warm_s)
        loads.streaming(one.target.url(), loads.CONCURRENCY * 2, plan.stream_max_s)
        one.entry["rounds"] = []
    for index in range(plan.rounds):
        print(f"== round {index + 1} of {plan.rounds}", flush=True)
        for one in live:
            if "error" in one.entry:
                continue
            try:
                one.entry["rounds"].append(one_round(one, plan))
            except Exception as exc:  # recorded; the other targets go on
                traceback.print_exc()
                one.entry["error"] = repr(exc)[:500]
    for one in live:
        report.summarize(one.entry)


def run_all(names: list[str] | None, plan: loads.LoadPlan) -> dict[str, Any]:
    live, failed = start_all(names)
    try:
        measure(live, plan)
    finally:
        for one in live:
            _stop(one)
    results = {one.target.name: one.entry for one in live}
    results.update(failed)
    order = [t.name for t in targets.all_targets(UPSTREAM_PORT)]
    return {name: results[name] for name in order if name in results}


def write(
    results: dict[str, Any], plan: loads.LoadPlan, quick: bool, nice: int | None, out: Path
) -> None:
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
            "stream_max_s": plan.stream_max_s,
            "rounds": plan.rounds,
            "figures": "median of rounds (verdicts_best_round: each figure's best round)",
            "stream_shape": "20 SSE chunks, 9 ms apart, then [DONE] (180 ms)",
            "rps_tool": "wrk -t1 -c32",
            "stream_tool": "aiohttp on uvloop",
        },
        "machine": {**report.machine(), "nice": nice},
        "targets": results,
        "ratios": report.ratios(results),
        "verdicts": report.verdicts(results),
        "verdicts_best_round": report.verdicts(report.best_round_view(results)),
    }
    suffix = "_quick" if quick else ""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gateway{suffix}.json").write_text(json.dumps(doc, indent=2) + "\n")
    report.plot(results, labels, out / f"gateway{suffix}.png")
    print(json.dumps({"ratios": doc["ratios"], "verdicts": doc["verdicts"]}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short loads (a smoke check)")
    parser.add_argument("--only", nargs="*", help="target names (direct is always run)")
    parser.add_argument("--rounds", type=int, help="rounds of measurement (default: the plan's)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for the JSON and PNG (a scratch run)"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    names = sorted({"direct", *args.only}) if args.only else None
    check_ports_free([UPSTREAM_PORT, *(t.port for t in targets.all_targets(UPSTREAM_PORT))])
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
    write(results, plan, args.quick, nice, args.out)


if __name__ == "__main__":
    main()
