"""Interleaved A/B of inferplane gateways built from different source trees, in one run.

Each side is NAME=SRC (a source folder holding the `inferplane` package: this checkout's src,
or `git archive` of another commit unpacked somewhere). Every side runs `inferplane gateway`
(this virtualenv's Python, SRC first on PYTHONPATH, the ledger on as by default) in front of
the benchmark's mock upstream; all start at once, then rounds of wrk go over the sides in
turn, reversing the order every other round, so that neighbours' load falls on each alike.

Per side and round: requests/s (wrk -t1 -c32, only 2xx counted) and CPU microseconds per
request of the gateway's whole process tree (workers and ledger writer; the writer's share
also on its own), which moves much less than requests/s with other work on the machine. The
JSON has every round, the medians, each side's ratios to the first side's (the median of the
rounds' ratios), and the load average each round began at.

    python bench/gateway/ab.py base=/scratch/base/src main=src --workers 1 2 --rounds 8
    python bench/gateway/ab.py ... --distinct   # a new prompt per request (no regenerations)

--distinct sends each request with a prompt of its own (wrk_chat_distinct.lua); by default
every request is the same (wrk_chat.lua, as run.py sends), which the ledger writer counts as
a regeneration of the one before (a feedback row stored per request): the worst case for it.
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
import targets  # noqa: E402

UPSTREAM_PORT = 9150
FIRST_PORT = 9160


@dataclass
class Side:
    name: str
    url: str
    process: Any  # subprocess.Popen[bytes]
    rps: list[float]
    cpu_us: list[float]
    writer_cpu_us: list[float]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU of a process and all its children: (all, the ledger writer's). The
    writer is the process that holds the ledger database open."""
    total = writer = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            files = process.open_files()
        except psutil.Error:
            continue
        total += times.user + times.system
        if any(f.path.endswith("ledger.db") for f in files):
            writer += times.user + times.system
    return total, writer


def start(name: str, src: str, workers: int, port: int, scratch: Path) -> Side:
    folder = scratch / name
    folder.mkdir(parents=True)
    fleet = folder / "fleet.yaml"
    fleet.write_text(targets.GATEWAY_FLEET.format(upstream=UPSTREAM_PORT, ledger_dir=folder))
    argv = [sys.executable, "-m", "inferplane", "gateway", str(fleet), "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--ledger"]  # fmt: skip
    env = {"PYTHONPATH": str(Path(src).resolve())}
    process = loads.start(argv, folder / "out.log", env)
    return Side(name, f"http://127.0.0.1:{port}{targets.CHAT_PATH}", process, [], [], [])


def one_round(side: Side, seconds: int, script: str) -> None:
    before, writer_before = cpu_seconds(side.process.pid)
    result = loads.wrk(side.url, seconds, script)
    after, writer_after = cpu_seconds(side.process.pid)
    requests = max(result["requests"], 1)
    side.rps.append(result["requests_per_s"])
    side.cpu_us.append(round((after - before) * 1e6 / requests, 1))
    side.writer_cpu_us.append(round((writer_after - writer_before) * 1e6 / requests, 1))


def summary(sides: list[Side], loadavg: list[float], args: argparse.Namespace) -> dict[str, Any]:
    first = sides[0]
    out: dict[str, Any] = {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "distinct_prompts": args.distinct,
        "loadavg_1m": loadavg,
        "sides": {},
    }
    for side in sides:
        ratios = [a / b for a, b in zip(side.rps, first.rps, strict=True)]
        out["sides"][side.name] = {
            "requests_per_s": side.rps,
            "cpu_us_per_request": side.cpu_us,
            "median_requests_per_s": statistics.median(side.rps),
            "median_cpu_us_per_request": statistics.median(side.cpu_us),
            "writer_cpu_us_per_request": side.writer_cpu_us,
            "median_writer_cpu_us_per_request": statistics.median(side.writer_cpu_us),
            f"median_cpu_ratio_to_{first.name}": round(
                statistics.median(a / b for a, b in zip(side.cpu_us, first.cpu_us, strict=True)),
                3,
            ),
            f"median_ratio_to_{first.name}": round(statistics.median(ratios), 3),
        }
    return out


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    sides: list[Side] = []
    upstream = loads.start(
        [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(UPSTREAM_PORT)],
        scratch / "upstream.log",
    )
    try:
        loads.wait_ready(f"http://127.0.0.1:{UPSTREAM_PORT}{targets.CHAT_PATH}", upstream, 20)
        for workers in args.workers:
            for spec in args.sides:
                name, src = spec.split("=", 1)
                port = FIRST_PORT + len(sides)
                sides.append(start(f"{name}-{workers}w", src, workers, port, scratch))
        for side in sides:
            loads.wait_ready(side.url, side.process, 120)
            loads.wrk(side.url, 3)  # warm-up
        script = "wrk_chat_distinct.lua" if args.distinct else "wrk_chat.lua"
        loadavg = []
        for index in range(args.rounds):
            loadavg.append(round(os.getloadavg()[0], 2))
            for side in sides if index % 2 == 0 else sides[::-1]:
                one_round(side, args.seconds, script)
            line = {s.name: (s.rps[-1], s.cpu_us[-1]) for s in sides}
            print(f"round {index + 1}: {line} load {loadavg[-1]}", flush=True)
        return summary(sides, loadavg, args)
    finally:
        for side in sides:
            loads.stop(side.process)
        loads.stop(upstream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sides", nargs="+", help="NAME=SRC, the first is the reference")
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4, help="wrk seconds per side and round")
    parser.add_argument("--distinct", action="store_true", help="a new prompt per request")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args()
    scratch = targets.scratch_dir("ab")
    began = time.monotonic()
    result = run(args, scratch)
    result["wall_s"] = round(time.monotonic() - began)
    loads.emit(result, args.out)


if __name__ == "__main__":
    main()
