"""Output tokens/s through the HTTP server vs the engine called directly, in the same run.

The same requests (same prompts, same max_tokens, ignore_eos) go once straight into
AsyncLLMEngine in this process, and once as streaming /v1/completions requests to an
`inferplane serve` process over HTTP on 127.0.0.1, from 32 concurrent clients that each send
a few requests back to back (a closed loop, as a serving benchmark's max-concurrency runs; one
synchronised burst of 32 weighs the ramp-up and the tail of a single batch as much as the
steady state). Tokens are counted from the engine's final updates and from the usage chunk of
each stream. Target: HTTP >= 90 % of direct.

Two workloads (`--model`): demo:small, the benchmark model, and demo:tiny, whose steps are so
short that the HTTP work per token weighs ~30x more than with demo:small: the worst case for
the server, reported beside the headline rather than instead of it.

Rounds are paired (HTTP beside direct, alternating which goes first) and the headline is the
median of per-pair ratios. On a small shared machine the wall-clock ratio swings with other
load, so the CPU cost per token is reported too: tokens per CPU-second of the engine process
(direct) vs of the server plus the load generator (HTTP), and of the server alone. The server
counts with its engine process (a child, by default); `--engine-in-process` serves with the
engine on a thread instead, for comparison (`server_engine` in the JSON says which).

Writes bench/results/server.json and server.png (demo:small), or server-demo-tiny.json and
.png. Run from the repository root:

    python bench/bench_server.py                     # demo:small, 16 paired rounds (~17 min)
    python bench/bench_server.py --model demo:tiny   # 30 paired rounds (~7 min)
    python bench/bench_server.py --quick             # one short round
"""

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch

from inferplane.engine.front.async_engine import AsyncLLMEngine
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.sources import resolve_source

RESULTS = Path(__file__).parent / "results"
CONCURRENCY = 32
PROMPT_LEN = 32
FIRST_ORDINARY_TOKEN = 3  # ids 0..2 of the demo vocabulary are special tokens
KV_CACHE_MIB = 64


@dataclass(frozen=True)
class Workload:
    """One model's load: each of the CONCURRENCY clients sends `requests_per_client` requests
    back to back (so a round is not one synchronised burst) of `max_tokens` tokens."""

    model: str
    requests_per_client: int
    max_tokens: int
    rounds: int
    results_name: str

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            model=self.model,
            dtype=DTYPE,
            kv_cache_bytes=KV_CACHE_MIB * 2**20,
            max_num_seqs=CONCURRENCY,
        )


DTYPE = "bfloat16"
# demo:small (~386M parameters) is the benchmark model: a step of 32 sequences takes a few
# hundred ms on a CPU, as a real model's would. demo:tiny steps in ~10 ms, so the HTTP work per
# token weighs ~30x more against the engine than with any real model: the worst case.
WORKLOADS = {
    "demo:small": Workload("demo:small", 2, 32, 16, "server"),
    "demo:tiny": Workload("demo:tiny", 4, 128, 30, "server-demo-tiny"),
}


def prompts(count: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [
        [rng.randrange(FIRST_ORDINARY_TOKEN, 4000) for _ in range(PROMPT_LEN)] for _ in range(count)
    ]


Counts = tuple[int, int]  # (tokens, stream events that carried them)


async def closed_loop(
    batch: list[list[int]], send: Callable[[int, list[int]], Awaitable[Counts]]
) -> Counts:
    """CONCURRENCY clients, each sending its share of `batch` one request after another (as
    a serving benchmark's max-concurrency does); returns the tokens and events received."""

    async def client(index: int) -> list[Counts]:
        return [await send(index, prompt) for prompt in batch[index::CONCURRENCY]]

    counts = [c for share in await asyncio.gather(*map(client, range(CONCURRENCY))) for c in share]
    return sum(tokens for tokens, _ in counts), sum(events for _, events in counts)


async def direct_round(
    engine: AsyncLLMEngine, batch: list[list[int]], max_tokens: int
) -> Counts:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)

    async def one(i: int, prompt: list[int]) -> Counts:
        tokens = updates = 0
        async for out in engine.generate(prompt, params, f"direct-{time.monotonic_ns()}-{i}"):
            tokens, updates = out.completion_tokens, updates + bool(out.new_tokens)
        return tokens, updates

    return await closed_loop(batch, one)


async def http_round(port: int, batch: list[list[int]], max_tokens: int) -> Counts:
    return await closed_loop(batch, lambda _, prompt: _stream(port, prompt, max_tokens))


async def _stream(port: int, prompt: list[int], max_tokens: int) -> Counts:
    """One streaming request over a bare socket. The load generator shares the 2 cores with
    the server, so it does the least work it can: read to EOF, parse only the usage chunk."""
    body = json.dumps(
        {
            "model": "bench",
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Wake only when the whole response is in (or EOF): one read per request instead of one
    # per token. The server still writes, and the kernel still delivers, every event as it is
    # made; only this process's reads are batched (`events_per_token` in the JSON shows it).
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1 << 20)
    writer.write(head.encode() + body)
    chunks = []
    while chunk := await reader.read(1 << 16):
        chunks.append(chunk)
    writer.close()
    text = b"".join(chunks).decode()
    usage = text.rindex('"completion_tokens":')
    return int(text[usage + 20 : text.index(",", usage)]), text.count('"choices":[{')


def start_server(
    workload: Workload, port: int, in_process: bool, stream_interval: int = 1
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "inferplane.cli.serve_cmd",
        workload.model,
        "--served-model-name",
        "bench",
        "--port",
        str(port),
        "--dtype",
        DTYPE,
        "--kv-cache-memory",
        f"{KV_CACHE_MIB}MiB",
        "--max-num-seqs",
        str(CONCURRENCY),
        "--stream-interval",
        str(stream_interval),
        *(["--engine-in-process"] if in_process else []),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready in time")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux /proc)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children: the server with its engine process."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue  # exited meanwhile
    return found


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


async def timed(
    run: Any, pids: list[int], tree: bool = False
) -> tuple[float, list[float], float]:
    """(tokens per wall second, tokens per CPU second of each given process, events per
    token). `tree`: the first pid counts with its children (the server and its engine)."""
    clocks = [tree_cpu_seconds if tree else cpu_seconds] + [cpu_seconds] * (len(pids) - 1)
    cpu0 = [clock(pid) for clock, pid in zip(clocks, pids, strict=True)]
    wall0 = time.perf_counter()
    tokens, events = await run()
    wall = time.perf_counter() - wall0
    cpu = [clock(pid) - start for clock, pid, start in zip(clocks, pids, cpu0, strict=True)]
    return tokens / wall, [tokens / max(seconds, 1e-9) for seconds in cpu], events / tokens


async def measure(  # noqa: PLR0917
    workload: Workload,
    rounds: int,
    max_tokens: int,
    port: int,
    in_process: bool,
    stream_interval: int,
) -> dict[str, list[float]]:
    """Paired rounds: each HTTP round runs right beside a direct round, alternating which
    goes first, so drift in the machine's load hits both alike."""
    batch = prompts(CONCURRENCY * workload.requests_per_client)
    engine = AsyncLLMEngine.from_config(workload.engine_config(), "bench")
    server = start_server(workload, port, in_process, stream_interval)
    runs: dict[str, list[float]] = {
        "direct": [],
        "http": [],
        "direct_cpu": [],
        "http_cpu": [],
        "http_server_cpu": [],
        "direct_events_per_token": [],
        "http_events_per_token": [],
    }
    me = os.getpid()

    async def direct() -> None:
        wall, (cpu,), events = await timed(lambda: direct_round(engine, batch, max_tokens), [me])
        runs["direct"].append(wall)
        runs["direct_events_per_token"].append(events)
        runs["direct_cpu"].append(cpu)

    async def http() -> None:
        # The server's CPU and this process's (the load generator's) both count against HTTP.
        wall, (server_cpu, client_cpu), events = await timed(
            lambda: http_round(port, batch, max_tokens), [server.pid, me], tree=True
        )
        runs["http"].append(wall)
        runs["http_events_per_token"].append(events)
        runs["http_cpu"].append(1 / (1 / server_cpu + 1 / client_cpu))
        runs["http_server_cpu"].append(server_cpu)

    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        await direct_round(engine, batch[:CONCURRENCY], 8)  # warm-up, both sides
        await http_round(port, batch[:CONCURRENCY], 8)
        for index in range(rounds):
            for side in (http, direct) if index % 2 else (direct, http):
                await side()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        await engine.shutdown()
    return runs


def summarise(
    runs: dict[str, list[float]],
    workload: Workload,
    max_tokens: int,
    in_process: bool,
    stream_interval: int,
) -> dict[str, Any]:
    direct, http = statistics.median(runs["direct"]), statistics.median(runs["http"])
    # The headline is the median of per-pair ratios: robust to load from other processes.
    pairs = [h / d for h, d in zip(runs["http"], runs["direct"], strict=True)]
    cpu_pairs = [h / d for h, d in zip(runs["http_cpu"], runs["direct_cpu"], strict=True)]
    return {
        "benchmark": "server",
        "server_engine": "in-process thread" if in_process else "engine process",
        "model": workload.model,
        "dtype": DTYPE,
        "server_stream_interval": stream_interval,
        "concurrency": CONCURRENCY,
        "requests_per_client": workload.requests_per_client,
        "prompt_tokens": PROMPT_LEN,
        "max_tokens": max_tokens,
        "rounds": len(runs["direct"]),
        "direct_tokens_per_s": runs["direct"],
        "http_tokens_per_s": runs["http"],
        "direct_median": round(direct, 1),
        "http_median": round(http, 1),
        "pair_ratios": [round(r, 3) for r in pairs],
        "ratio": round(statistics.median(pairs), 3),
        "direct_tokens_per_cpu_s": runs["direct_cpu"],
        "http_tokens_per_cpu_s": runs["http_cpu"],
        "cpu_pair_ratios": [round(r, 3) for r in cpu_pairs],
        "cpu_ratio": round(statistics.median(cpu_pairs), 3),
        "server_only_cpu_ratio": round(
            statistics.median(
                h / d for h, d in zip(runs["http_server_cpu"], runs["direct_cpu"], strict=True)
            ),
            3,
        ),
        # 1.0: one SSE event per token; under 1: the server merged tokens it fell behind on.
        "direct_events_per_token": round(statistics.median(runs["direct_events_per_token"]), 3),
        "http_events_per_token": round(statistics.median(runs["http_events_per_token"]), 3),
        "load_average_1m": os.getloadavg()[0],
        "target_ratio": 0.9,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": len(os.sched_getaffinity(0)),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    labels = ["engine direct", "HTTP streaming"]
    values = [result["direct_median"], result["http_median"]]
    ax.bar(labels, values, color=["#4c72b0", "#dd8452"])
    for i, value in enumerate(values):
        ax.text(i, value, f"{value:.0f}", ha="center", va="bottom")
    ax.set_ylabel("output tokens/s")
    ax.set_title(
        f"{result['model']}, {result['concurrency']} concurrent, {result['max_tokens']} tokens "
        f"each, server stream interval {result['server_stream_interval']}\n"
        f"HTTP/direct: {result['ratio']:.0%} wall (median of pairs), "
        f"{result['cpu_ratio']:.0%} per CPU-second; load avg {result['load_average_1m']:.1f} "
        f"on {result['machine']['cores']} cores"
    )
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="HTTP server vs direct engine throughput")
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model", choices=sorted(WORKLOADS), default="demo:small")
    parser.add_argument(
        "--stream-interval",
        type=int,
        default=1,
        help="the server's --stream-interval (tokens per SSE event after the first); a run "
        "with N > 1 writes its own files (-intervalN)",
    )
    parser.add_argument("--rounds", type=int, help="paired rounds (default: the workload's)")
    parser.add_argument(
        "--engine-in-process", action="store_true", help="serve with the engine on a thread"
    )
    args = parser.parse_args()
    workload = WORKLOADS[args.model]
    rounds, max_tokens = (1, 16) if args.quick else (workload.rounds, workload.max_tokens)
    rounds = args.rounds or rounds
    interval = args.stream_interval
    resolve_source(workload.model)  # generate the demo model before any timing
    runs = asyncio.run(
        measure(workload, rounds, max_tokens, args.port, args.engine_in_process, interval)
    )
    result = summarise(runs, workload, max_tokens, args.engine_in_process, interval)
    name = workload.results_name + (f"-interval{interval}" if interval > 1 else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / f"{name}.png")
    keys = (
        "direct_median",
        "http_median",
        "pair_ratios",
        "ratio",
        "cpu_pair_ratios",
        "cpu_ratio",
        "server_only_cpu_ratio",
        "http_events_per_token",
        "load_average_1m",
    )
    print(json.dumps({key: result[key] for key in keys}))


if __name__ == "__main__":
    main()
