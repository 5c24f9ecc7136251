"""The quality path's share of a gateway worker's CPU, sampled inside the worker under load.

An A/B of two gateways (ab.py) compares CPU per request across processes, and on a shared
2-core host two copies of one tree differ by up to 3% that way: it cannot resolve a 2% cost.
This measures the share inside one process instead: py-spy samples the worker (1 worker, the
ledger on) while wrk sends chat requests with a prompt of their own each, and the share is the
samples whose stack holds one of the quality path's calls over all the worker's samples. Both
come from the same process in the same seconds, so neighbours' load scales them alike.

    pip install py-spy   # a tool beside the benchmark, never a dependency of the project
    python bench/gateway/quality_profile.py --out bench/results/gateway_quality_profile.json

Writes the JSON (each round's share per call, the medians, requests/s) and a PNG of the
median share per call beside it.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ab  # noqa: E402
import loads  # noqa: E402
import targets  # noqa: E402

# What the gateway runs for quality per request, and in the background for it.
QUALITY_CALLS = (
    "prompt_digest",  # the body's digest for the ledger writer's regenerations
    "FeedbackBook.served",  # the memory of request ids; abandoned streams
    "QualityBook.answered",  # confidence per model version and pool
    "DriftSampler.sample",  # one body in ten kept for drift
    "DriftSampler.drain",  # their scoring, in the background
    "GatewayState.count_regenerations",  # the writer's totals, read at each sweep
)


def frames(stack: str) -> set[str]:
    """The function names of a py-spy raw stack ("name (file:line);...")."""
    return {frame.split(" (", 1)[0] for frame in stack.split(";")}


def shares(raw: Path) -> tuple[int, dict[str, float]]:
    """Samples in a py-spy raw profile, and each quality call's share of them (inclusive)."""
    total, hits = 0, Counter[str]()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        names = frames(stack)
        found = [call for call in QUALITY_CALLS if call in names]
        hits.update(dict.fromkeys(found, samples))
        if found:
            hits["all"] += samples
    return total, {name: hits[name] / max(total, 1) for name in (*QUALITY_CALLS, "all")}


def profile_round(side: ab.Side, seconds: int, py_spy: str, rate: int, out: Path) -> float:
    argv = [py_spy, "record", "-p", str(side.process.pid), "-r", str(rate), "-d",
            str(seconds + 1), "-f", "raw", "-o", str(out), "--nonblocking"]  # fmt: skip
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the load starts
    result = loads.wrk(side.url, seconds, "wrk_chat_distinct.lua")
    spy.wait(timeout=seconds + 60)
    return float(result["requests_per_s"])


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    upstream = loads.start(
        [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(ab.UPSTREAM_PORT)],
        scratch / "upstream.log",
    )
    side = None
    try:
        loads.wait_ready(f"http://127.0.0.1:{ab.UPSTREAM_PORT}{targets.CHAT_PATH}", upstream, 20)
        side = ab.start("gateway", args.src, 1, ab.FIRST_PORT, scratch)
        loads.wait_ready(side.url, side.process, 120)
        loads.wrk(side.url, 3, "wrk_chat_distinct.lua")  # warm-up
        rounds = []
        for index in range(args.rounds):
            raw = scratch / f"round-{index}.txt"
            load = loads.loadavg()[0]
            rps = profile_round(side, args.seconds, args.py_spy, args.rate, raw)
            samples, share = shares(raw)
            rounds.append({"requests_per_s": rps, "samples": samples, "loadavg_1m": load,
                           "share": {k: round(v, 5) for k, v in share.items()}})  # fmt: skip
            print(f"round {index + 1}: {rps} req/s, quality path {share['all']:.2%}", flush=True)
    finally:
        if side is not None:
            loads.stop(side.process)
        loads.stop(upstream)
    medians = {
        name: round(statistics.median(r["share"][name] for r in rounds), 5)
        for name in (*QUALITY_CALLS, "all")
    }
    return {"rounds": rounds, "median_share": medians, "seconds": args.seconds, "rate": args.rate}


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = [*QUALITY_CALLS, "all"]
    values = [result["median_share"][name] * 100 for name in names]
    figure, axes = plt.subplots(figsize=(8, 4))
    axes.barh(names, values, color=["tab:blue"] * len(QUALITY_CALLS) + ["tab:red"])
    axes.axvline(2.0, color="grey", linestyle="--", label="2% goal")
    axes.set_xlabel("share of the worker's CPU samples, % (median of rounds)")
    axes.set_title("Gateway quality path, sampled inside the worker")
    axes.invert_yaxis()
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--src", default=str(HERE.parent.parent / "src"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = run(args, Path(scratch))
    result["loadavg_end"] = loads.loadavg()
    loads.emit(result, args.out)
    if args.out:
        chart(result, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
