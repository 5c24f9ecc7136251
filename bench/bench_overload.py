"""Overload: N concurrent streaming chats at once against a gateway over two demo:tiny replicas.

For each level (500, 1,000, 2,000 and 5,000 streams by default; --levels to choose), every
stream is opened at the same moment and read to its end. Reported per level: the share
admitted (200) and refused by status code; the time to a refusal (p50 / p99) in the burst,
from the burst's start (the client's own connects included) and from the request's head on
the wire; the time to a refusal of a client arriving during the burst (one connection sending
requests one after another from half a second into it; p50 / p90 / max); the admitted
requests' time to first token (p50 / p99, from either start) against the pool's deadline
(overload.max_wait); the gateway's CPU time per request and its resident memory after the
level and at its peak (its whole process tree with --gateway-workers above 1); the load
average. Goals: no 5xx but 503, refusal p99 under 100 ms,
admitted TTFT p99 within the deadline, memory bounded. Writes bench/results/NAME.json and
NAME.png (--name, overload by default), with the machine.
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import matplotlib
import psutil

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from inferplane.control.actuators.local import free_port

RESULTS = Path(__file__).parent / "results"
BODY = {
    "model": "chat",
    "messages": [{"role": "user", "content": "tell me a story"}],
    "max_tokens": 32,
    "stream": True,
}
PROBES, PROBE_AFTER_S, PROBE_GAP_S = 40, 0.5, 0.05  # one client's requests during a burst


def start(command: list[str], log: Path, cpus: set[int] | None = None) -> subprocess.Popen[bytes]:
    """A process, held to `cpus` when given (its children inherit the set)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    if cpus:
        os.sched_setaffinity(process.pid, cpus)
    return process


def placement(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(the gateway's CPUs, everything else's) with --pin: the gateway gets the last CPU to
    itself, the replicas and this client the rest, so a burst's refusals wait only on the
    gateway's own work; without --pin all share every CPU."""
    if not pin:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least 2 CPUs")
    return {cpus[-1]}, set(cpus[:-1])


def wait_ok(url: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:g} s")


def tree(pid: int) -> list[psutil.Process]:
    """A process and its children: a gateway's workers with --workers above 1."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident now, resident peak) of a process tree, in MiB (peaks summed)."""
    now = peak = 0.0
    for process in tree(pid):
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
        )
        now += int(fields["VmRSS"].split()[0]) / 1024
        peak += int(fields["VmHWM"].split()[0]) / 1024
    return now, peak


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process tree has used."""
    total = 0.0
    for process in tree(pid):
        times = process.cpu_times()
        total += times.user + times.system
    return total


async def _headers_sent(_: Any, context: Any, __: Any) -> None:
    context.trace_request_ctx["written"] = time.perf_counter()


def session(limit: int = 0) -> aiohttp.ClientSession:
    """A client whose requests note when their head went out (after any wait to connect)."""
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    connector = aiohttp.TCPConnector(limit=limit, force_close=limit == 0)
    timeout = aiohttp.ClientTimeout(total=300)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[trace])


async def one(client: aiohttp.ClientSession, url: str, answered: list[float]) -> dict[str, Any]:
    """One stream read to its end. answered_s and ttft_s run from the burst's start (the
    client's own connects on the same cores included), from_write_s and ttft_from_write_s from
    its request's head on the wire; `answered` gets the time of its status line."""
    sent = time.perf_counter()
    note: dict[str, float] = {}
    try:
        post = client.post(f"{url}/v1/chat/completions", json=BODY, trace_request_ctx=note)
        async with post as response:
            now = time.perf_counter()
            row = {"status": response.status, "answered_s": now - sent}
            row["from_write_s"] = now - note.get("written", sent)
            answered.append(now)
            async for _ in response.content.iter_any():
                if "ttft_s" not in row:
                    row["ttft_s"] = time.perf_counter() - sent
                    row["ttft_from_write_s"] = row["ttft_s"] - (now - sent) + row["from_write_s"]
            return row
    except (aiohttp.ClientError, TimeoutError) as error:
        answered.append(time.perf_counter())
        return {"status": type(error).__name__, "answered_s": time.perf_counter() - sent}


async def probe(url: str, done: asyncio.Event) -> list[dict[str, Any]]:
    """From PROBE_AFTER_S into the burst, requests one after another on one kept-alive
    connection: what a client arriving at the overloaded pool waits for its answer (the first
    ones wait behind what is left of the burst in the gateway's accept queue)."""
    rows: list[dict[str, Any]] = []
    async with session(limit=1) as client:
        await asyncio.sleep(PROBE_AFTER_S)
        while not done.is_set() and len(rows) < PROBES:
            rows.append(await one(client, url, []))
            await asyncio.sleep(PROBE_GAP_S)
    return rows


async def level(url: str, streams: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    done = asyncio.Event()
    answered: list[float] = []
    probes = asyncio.create_task(probe(url, done))
    async with session() as client:
        results = await asyncio.gather(*(one(client, url, answered) for _ in range(streams)))
    done.set()
    return results, await probes


def pct(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarize(
    streams: int, results: list[dict[str, Any]], probes: list[dict[str, Any]]
) -> dict[str, Any]:
    codes = Counter(str(r["status"]) for r in results)
    refused = [r for r in results if r["status"] != 200]
    admitted = [r for r in results if r["status"] == 200 and "ttft_s" in r]
    ttft = [r["ttft_s"] for r in admitted]
    ttft_from_write = [r["ttft_from_write_s"] for r in admitted]
    probe_refused = [r["from_write_s"] for r in probes if r["status"] == 503]
    return {
        "streams": streams,
        "share_admitted": codes.get("200", 0) / streams,
        "share_by_code": {code: n / streams for code, n in sorted(codes.items())},
        "refusal_p50_s": pct([r["answered_s"] for r in refused], 0.5),
        "refusal_p99_s": pct([r["answered_s"] for r in refused], 0.99),
        "refusal_from_write_p50_s": pct([r.get("from_write_s", 0.0) for r in refused], 0.5),
        "refusal_from_write_p99_s": pct([r.get("from_write_s", 0.0) for r in refused], 0.99),
        "probes": len(probes),
        "probe_codes": dict(Counter(str(r["status"]) for r in probes)),
        "probe_refusal_p50_s": pct(probe_refused, 0.5),
        "probe_refusal_p90_s": pct(probe_refused, 0.9),
        "probe_refusal_max_s": max(probe_refused, default=None),
        "admitted_ttft_p50_s": pct(ttft, 0.5),
        "admitted_ttft_p99_s": pct(ttft, 0.99),
        "admitted_ttft_mean_s": statistics.fmean(ttft) if ttft else None,
        "admitted_ttft_from_write_p50_s": pct(ttft_from_write, 0.5),
        "admitted_ttft_from_write_p99_s": pct(ttft_from_write, 0.99),
    }


def plot(rows: list[dict], deadline_s: float, path: Path) -> None:
    x = [r["streams"] for r in rows]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    codes = sorted({code for r in rows for code in r["share_by_code"]})
    bottom = [0.0] * len(rows)
    for code in codes:
        shares = [r["share_by_code"].get(code, 0.0) for r in rows]
        left.bar([str(v) for v in x], shares, bottom=bottom, label=code)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    left.set(title="outcome by status", xlabel="concurrent streams", ylabel="share")
    left.legend()
    for key, label in (
        ("refusal_p50_s", "burst p50"),
        ("refusal_p99_s", "burst p99"),
        ("refusal_from_write_p99_s", "burst p99 from request written"),
        ("probe_refusal_p50_s", "a client arriving during the burst, p50"),
        ("probe_refusal_p90_s", "a client arriving during the burst, p90"),
    ):
        middle.plot(x, [(r.get(key) or 0) * 1000 for r in rows], marker="o", label=label)
    middle.axhline(100, color="grey", linestyle="--", label="goal 100 ms")
    middle.set(title="time to a 503", xlabel="concurrent streams", ylabel="ms", xscale="log")
    middle.set_yscale("log")
    middle.legend()
    for key, label in (
        ("admitted_ttft_p50_s", "TTFT p50"),
        ("admitted_ttft_p99_s", "p99"),
        ("admitted_ttft_from_write_p99_s", "p99 from request written"),
    ):
        right.plot(x, [r[key] or 0 for r in rows], marker="o", label=label)
    right.axhline(deadline_s, color="grey", linestyle="--", label="deadline")
    twin = right.twinx()
    twin.plot(x, [r["gateway_peak_rss_mib"] for r in rows], "k:", marker="s", label="gw MiB")
    twin.set_ylabel("gateway peak RSS, MiB")
    right.set(title="admitted TTFT", xlabel="concurrent streams", ylabel="s", xscale="log")
    right.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="500,1000,2000,5000")
    parser.add_argument("--deadline", type=float, default=10.0, help="overload.max_wait, s")
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--gateway-workers", type=int, default=1)
    parser.add_argument("--name", default="overload", help="results file name")
    parser.add_argument("--pin", action="store_true", help="the gateway on a CPU of its own")
    args = parser.parse_args()
    gateway_cpus, other_cpus = placement(args.pin)
    if other_cpus:
        os.sched_setaffinity(0, other_cpus)  # this client, and the replicas it starts
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the gateway inherits it
    folder = Path(tempfile.mkdtemp(prefix="bench-overload-"))
    ports = [free_port() for _ in range(3)]
    replica_args = ["--served-model-name", "chat", "--max-num-seqs", str(args.max_num_seqs)]
    serve = [sys.executable, "-m", "inferplane", "serve", "demo:tiny", *replica_args]
    replicas = [
        start([*serve, "--port", str(p)], folder / f"r{i}.log") for i, p in enumerate(ports[:2])
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports[:2]]
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{', '.join(urls)}]}}}}\n"
        f"overload: {{slots: {args.max_num_seqs}, max_wait: {args.deadline}}}\n"
    )
    gateway_url = f"http://127.0.0.1:{ports[2]}"
    gateway = start(
        [sys.executable, "-m", "inferplane", "gateway", str(fleet), "--port", str(ports[2]),
         "--workers", str(args.gateway_workers), "--no-ledger"],
        folder / "gw.log", gateway_cpus,
    )  # fmt: skip
    rows = []
    try:
        for url in urls:
            wait_ok(f"{url}/ready")
        wait_ok(f"{gateway_url}/ready")
        asyncio.run(level(gateway_url, 8))  # warm: the gateway measures the replicas' rates
        for streams in (int(v) for v in args.levels.split(",")):
            began, cpu = time.perf_counter(), cpu_s(gateway.pid)
            results, probes = asyncio.run(level(gateway_url, streams))
            row = summarize(streams, results, probes)
            row["gateway_cpu_ms_per_request"] = (cpu_s(gateway.pid) - cpu) * 1000 / streams
            row["gateway_rss_mib"], row["gateway_peak_rss_mib"] = rss_mib(gateway.pid)
            row["wall_s"] = time.perf_counter() - began
            row["load_average_1m"] = os.getloadavg()[0]
            print(json.dumps(row), flush=True)
            rows.append(row)
            time.sleep(2)
    finally:
        for process in (gateway, *replicas):
            process.terminate()
        for process in (gateway, *replicas):
            process.wait(timeout=30)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    RESULTS.mkdir(exist_ok=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "python": platform.python_version()}  # fmt: skip
    report = {"deadline_s": args.deadline, "max_num_seqs": args.max_num_seqs,
              "gateway_workers": args.gateway_workers, "gateway_pinned": args.pin,
              "body": BODY, "machine": machine,
              "levels": rows}  # fmt: skip
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.deadline, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
