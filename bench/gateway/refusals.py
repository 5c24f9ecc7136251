"""How fast the gateway refuses: wrk against a pool that is always full.

The pool has one replica (the mock upstream, streaming 20 chunks 100 ms apart) and the fleet's
overload section gives it one slot and no queue, so all but the request holding the slot are
refused with 503 and Retry-After by the gate. wrk keeps C requests in flight, on kept-alive
connections or each on a new connection (`Connection: close`, as every stream of a burst of
new clients opens its own). Per setting: refusals per second, latency p50 / p99 and the gateway
process's CPU microseconds per request. By Little's law a refusal's latency at C in flight is
about C / (refusals per second): the throughput sets how large a burst is refused within a
time. --pin gives the gateway the last CPU and wrk the others.

wrk's timeout is 1 s: the one request that holds the slot streams for 2 s, and wrk, which
corrects its latencies for coordinated omission, would otherwise fill its histogram with
samples standing in for the requests that one connection did not send meanwhile (p99 near a
second where every refusal took milliseconds). Those streams count as `socket_errors`.

    python bench/gateway/refusals.py --out bench/results/gateway_refusals.json
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loads  # noqa: E402
import targets  # noqa: E402
from ab import cpu_seconds  # noqa: E402

UPSTREAM_PORT, GATEWAY_PORT = 9250, 9251
FLEET = """pools:
  bench: {{model: bench-model, endpoints: ["http://127.0.0.1:{upstream}"]}}
routes:
  - {{name: default, pool: bench}}
overload: {{slots: 1, queue_size: 0, max_wait: 1s}}
"""


def wrk(url: str, connections: int, seconds: int, close: bool, cpus: set[int] | None) -> Any:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "1s",
            "-s", str(HERE / "wrk_refuse.lua"), url]  # fmt: skip
    env = {**os.environ, "WRK_CLOSE": "1" if close else "0"}
    done = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 60, env=env,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    return json.loads(line.removeprefix("WRK_JSON "))


def one(url: str, pid: int, args: argparse.Namespace, close: bool, connections: int) -> Any:
    before = cpu_seconds(pid)
    raw = wrk(url, connections, args.seconds, close, args.wrk_cpus)
    spent = cpu_seconds(pid) - before
    seconds = raw["duration_us"] / 1e6
    return {
        "connection": "new per request" if close else "kept alive",
        "in_flight": connections,
        "refused_per_s": round(raw["status"] / seconds, 1),
        "answered_200": raw["requests"] - raw["status"],
        "socket_errors": sum(raw[k] for k in ("connect", "read", "write", "timeout")),
        "latency_p50_ms": raw["p50_us"] / 1000,
        "latency_p99_ms": raw["p99_us"] / 1000,
        "gateway_cpu_us_per_request": round(spent * 1e6 / max(raw["requests"], 1), 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def run(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    upstream = loads.start(
        [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(UPSTREAM_PORT),
         "--chunks", "20", "--gap-ms", "100"],
        scratch / "upstream.log",
    )  # fmt: skip
    fleet = scratch / "fleet.yaml"
    fleet.write_text(FLEET.format(upstream=UPSTREAM_PORT))
    gateway = loads.start(
        [*targets.gateway_cli(), str(fleet), "--port", str(GATEWAY_PORT), "--no-ledger"],
        scratch / "gateway.log",
    )
    url = f"http://127.0.0.1:{GATEWAY_PORT}{targets.CHAT_PATH}"
    rows = []
    try:
        if args.gateway_cpus:
            os.sched_setaffinity(gateway.pid, args.gateway_cpus)
        loads.wait_ready(url, gateway, 120)
        wrk(url, 32, 2, False, args.wrk_cpus)  # warm-up, not counted
        time.sleep(2)  # the probe's and the warm-up's admitted streams end
        for close in (False, True):
            for connections in args.in_flight:
                rows.append(one(url, gateway.pid, args, close, connections))
                print(json.dumps(rows[-1]), flush=True)
                time.sleep(1)
    finally:
        loads.stop(gateway)
        loads.stop(upstream)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--in-flight", type=int, nargs="+", default=[32, 100, 500])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--pin", action="store_true", help="the gateway on a CPU of its own")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    pinned = args.pin and len(cpus) > 1
    args.gateway_cpus = {cpus[-1]} if pinned else None
    args.wrk_cpus = set(cpus[:-1]) if pinned else None
    rows = run(args, targets.scratch_dir("refusals"))
    result = {"pinned": pinned, "seconds": args.seconds, "rows": rows}
    loads.emit(result, args.out)


if __name__ == "__main__":
    main()
