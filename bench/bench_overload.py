"""Overload: N concurrent streaming chats at once against a gateway over two demo:tiny replicas.

For each level (500, 1,000, 2,000 and 5,000 streams by default; --levels to choose), every
stream is opened at the same moment and read to its end. Reported per level: the share
admitted (200) and refused by status code, the time to a refusal (p50 / p99, from sending to
the status line), the admitted requests' time to first token (p50 / p99) against the pool's
deadline (overload.max_wait), and the gateway's resident memory after the level and at its
peak. Goals: no 5xx but 503, refusal p99 under 100 ms, admitted TTFT p99 within the deadline,
memory bounded. Writes bench/results/overload.json and overload.png, with the machine.
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


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


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


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident now, resident peak) of a process, in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def one(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    sent = time.perf_counter()
    try:
        async with session.post(f"{url}/v1/chat/completions", json=BODY) as response:
            answered = time.perf_counter() - sent
            first = None
            async for _ in response.content.iter_any():
                if first is None:
                    first = time.perf_counter() - sent
            return {"status": response.status, "answered_s": answered, "ttft_s": first}
    except (aiohttp.ClientError, TimeoutError) as error:
        return {"status": type(error).__name__, "answered_s": time.perf_counter() - sent}


async def level(url: str, streams: int) -> list[dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(*(one(session, url) for _ in range(streams)))


def pct(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarize(streams: int, results: list[dict[str, Any]], memory: tuple[float, float]) -> dict:
    codes = Counter(str(r["status"]) for r in results)
    refused = [r["answered_s"] for r in results if r["status"] != 200]
    ttft = [r["ttft_s"] for r in results if r["status"] == 200 and r["ttft_s"] is not None]
    return {
        "streams": streams,
        "share_admitted": codes.get("200", 0) / streams,
        "share_by_code": {code: n / streams for code, n in sorted(codes.items())},
        "refusal_p50_s": pct(refused, 0.5),
        "refusal_p99_s": pct(refused, 0.99),
        "admitted_ttft_p50_s": pct(ttft, 0.5),
        "admitted_ttft_p99_s": pct(ttft, 0.99),
        "admitted_ttft_mean_s": statistics.fmean(ttft) if ttft else None,
        "gateway_rss_mib": memory[0],
        "gateway_peak_rss_mib": memory[1],
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
    for key, label in (("refusal_p50_s", "refusal p50"), ("refusal_p99_s", "refusal p99")):
        middle.plot(x, [(r[key] or 0) * 1000 for r in rows], marker="o", label=label)
    middle.axhline(100, color="grey", linestyle="--", label="goal 100 ms")
    middle.set(title="time to refusal", xlabel="concurrent streams", ylabel="ms", xscale="log")
    middle.legend()
    for key, label in (("admitted_ttft_p50_s", "TTFT p50"), ("admitted_ttft_p99_s", "p99")):
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
    args = parser.parse_args()
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
         "--no-ledger"],
        folder / "gw.log",
    )  # fmt: skip
    rows = []
    try:
        for url in urls:
            wait_ok(f"{url}/ready")
        wait_ok(f"{gateway_url}/ready")
        asyncio.run(level(gateway_url, 8))  # warm: the gateway measures the replicas' rates
        for streams in (int(v) for v in args.levels.split(",")):
            began = time.perf_counter()
            results = asyncio.run(level(gateway_url, streams))
            row = summarize(streams, results, rss_mib(gateway.pid))
            row["wall_s"] = time.perf_counter() - began
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
              "body": BODY, "machine": machine, "levels": rows}  # fmt: skip
    (RESULTS / "overload.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.deadline, RESULTS / "overload.png")


if __name__ == "__main__":
    main()
