"""Scheduler + KV-cache bookkeeping cost per decode step, without a model.

For 64, 128 and 256 running sequences (128-token prompts, prefix caching on), time
`schedule()` + `update_from_output()` over steady-state decode steps and write p50/p99 to
bench/results/scheduler.json and a chart to bench/results/scheduler.png. For context it also
times a whole `LLMEngine.step()` around a runner that does no work (batch building, incremental
detokenization, outputs): the engine's Python overhead per step.

    python bench/bench_scheduler.py [--steps 400]
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from inferplane.engine.core.batch import RunnerDefaults, SampledToken, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.kv_cache import KVCacheManager
from inferplane.engine.core.request import Request
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.scheduler import Scheduler, SchedulerConfig

RESULTS = Path(__file__).parent / "results"
SIZES = (64, 128, 256)
PROMPT_LEN = 128
BLOCK_SIZE = 16
TARGET_MS = 1.0


def build(num_seqs: int, steps: int) -> Scheduler:
    config = SchedulerConfig(max_num_seqs=num_seqs, max_num_batched_tokens=8192, max_model_len=4096)
    blocks = num_seqs * ((PROMPT_LEN + steps) // BLOCK_SIZE + 2)
    sched = Scheduler(config, KVCacheManager(blocks, BLOCK_SIZE), clock=time.perf_counter)
    params = SamplingParams(max_tokens=steps + 10, ignore_eos=True)
    for i in range(num_seqs):
        # a shared system prompt of 64 tokens, then a private part
        prompt = [1 + j for j in range(64)] + [1000 + i * PROMPT_LEN + j for j in range(64)]
        sched.add_request(Request(f"r{i}", prompt, params, eos_token_ids=[0]))
    return sched


def one_step(sched: Scheduler, token: int) -> float:
    start = time.perf_counter()
    out = sched.schedule()
    sampled = {
        r.request_id: token
        for r, n in zip(out.requests, out.num_tokens, strict=True)
        if r.num_computed_tokens + n == r.num_tokens
    }
    sched.update_from_output(out, sampled)
    return time.perf_counter() - start


def measure(num_seqs: int, steps: int) -> dict[str, float]:
    sched = build(num_seqs, steps)
    while any(r.num_computed_tokens < r.num_prompt_tokens for r in sched.requests.values()):
        one_step(sched, 5)  # prefill until every sequence decodes
    times = sorted(one_step(sched, 5 + k % 50) * 1e3 for k in range(steps))
    assert sched.num_running == num_seqs
    return {
        "num_seqs": num_seqs,
        "steps": steps,
        "p50_ms": statistics.median(times),
        "p99_ms": _p99(times),
        "mean_ms": statistics.fmean(times),
        "kv_usage": sched.kv.usage,
        "prefix_hit_rate": sched.kv.stats().hit_rate,
    }


class NullRunner(RunnerDefaults):
    """Samples a letter per sampling chunk, computes nothing."""

    block_size = BLOCK_SIZE

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.max_model_len = 4096

    def execute(self, batch: StepBatch) -> list[SampledToken]:
        return [
            SampledToken(c.request_id, 97 + c.end_position % 26) for c in batch.chunks if c.sample
        ]


class ByteTokenizer:
    eos_token_ids = (0,)

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def measure_engine(num_seqs: int, steps: int) -> dict[str, float]:
    config = EngineConfig(model="none", max_num_seqs=num_seqs, max_num_batched_tokens=8192)
    blocks = num_seqs * ((PROMPT_LEN + steps) // BLOCK_SIZE + 2)
    engine = LLMEngine(config, NullRunner(blocks), ByteTokenizer(), clock=time.perf_counter)
    params = SamplingParams(max_tokens=steps + 10, ignore_eos=True)
    for i in range(num_seqs):
        engine.add_request(f"r{i}", [97 + (i + j) % 26 for j in range(PROMPT_LEN)], params)
    while engine.scheduler.num_waiting or any(
        r.num_output_tokens == 0 for r in engine.scheduler.running
    ):
        engine.step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        engine.step()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"engine_p50_ms": statistics.median(times), "engine_p99_ms": _p99(times)}


def _p99(sorted_times: list[float]) -> float:
    return sorted_times[min(len(sorted_times) - 1, int(len(sorted_times) * 0.99))]


def plot(rows: list[dict[str, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [int(r["num_seqs"]) for r in rows]
    ax.plot(xs, [r["p50_ms"] for r in rows], marker="o", label="scheduler + KV, p50")
    ax.plot(xs, [r["p99_ms"] for r in rows], marker="o", label="scheduler + KV, p99")
    ax.plot(
        xs,
        [r["engine_p50_ms"] for r in rows],
        marker="s",
        linestyle=":",
        label="whole engine step, null model (p50)",
    )
    ax.axhline(TARGET_MS, color="grey", linestyle="--", label="target 1 ms")
    ax.set_xlabel("running sequences")
    ax.set_ylabel("time per decode step (ms)")
    ax.set_xticks(xs)
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title("Scheduler + KV bookkeeping per decode step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    rows = [{**measure(n, args.steps), **measure_engine(n, args.steps)} for n in SIZES]
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "target_ms": TARGET_MS,
        "block_size": BLOCK_SIZE,
        # p99 is sensitive to other processes on the machine: record how busy it was
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "results": rows,
    }
    (RESULTS / "scheduler.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(rows, RESULTS / "scheduler.png")
    for row in rows:
        seqs, p50, p99 = int(row["num_seqs"]), row["p50_ms"], row["p99_ms"]
        engine = row["engine_p50_ms"]
        print(f"{seqs:4d} seqs: p50 {p50:.3f} ms, p99 {p99:.3f} ms (engine step p50 {engine:.3f})")


if __name__ == "__main__":
    main()
