"""Shared pieces of the engine benchmark: the machine, its memory bandwidth, the workload
(trace-shaped synthetic prompts), the transformers peer, and result files."""

import csv
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from machine import machine_record

HERE = Path(__file__).parent
RESULTS = HERE / "results"
TRACE_SAMPLE = HERE / "data" / "azure_conv_sample.csv"
FIRST_ORDINARY_TOKEN = 3  # the demo vocabulary's ids 0..2 are special tokens


@dataclass(frozen=True)
class Workload:
    prompt_len: int
    output_len: int


def machine_info() -> dict[str, Any]:
    """What ran the benchmark, without any path or host name."""
    return machine_record(
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    )


def memory_read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes per second a full-tensor sum reads, best of `repeats` (the decode roofline's
    denominator: batch-1 decode reads every weight once per token)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32, device=device)
    best = float("inf")
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        data.sum()
        _sync()
        best = min(best, time.perf_counter() - start)
    return data.numel() * 4 / best


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def trace_workload(count: int, scale: float = 1.0) -> list[Workload]:
    """The first `count` rows of the shipped trace sample, lengths scaled to a small run:
    prompts / 8 clipped to 32..512, outputs / 4 clipped to 16..128, then x `scale`."""
    with TRACE_SAMPLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:count]
    return [
        Workload(
            max(8, int(_clip(int(row["ContextTokens"]) / 8, 32, 512) * scale)),
            max(4, int(_clip(int(row["GeneratedTokens"]) / 4, 16, 128) * scale)),
        )
        for row in rows
    ]


def _clip(value: float, low: int, high: int) -> int:
    return int(min(max(value, low), high))


def random_prompt(length: int, vocab_size: int, rng: random.Random) -> list[int]:
    return [rng.randrange(FIRST_ORDINARY_TOKEN, vocab_size) for _ in range(length)]


def load_hf_model(directory: Path, dtype: torch.dtype, gguf_file: str | None = None) -> Any:
    auto = transformers.AutoModelForCausalLM
    model: Any = auto.from_pretrained(directory, dtype=dtype, gguf_file=gguf_file)
    return model.eval()


@torch.inference_mode()
def hf_generate(model: Any, prompts: Sequence[list[int]], new_tokens: int) -> list[list[int]]:
    """Greedy generation of exactly `new_tokens` for a left-padded static batch."""
    width = max(len(prompt) for prompt in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        pad_token_id=0,
    )
    return [list(map(int, row[width:])) for row in out]


def hf_static_batches(
    model: Any, prompts: Sequence[list[int]], outputs: Sequence[int], batch_size: int
) -> float:
    """Run requests in arrival order in static batches; each batch decodes until its longest
    request is done (what a batch without continuous batching costs). Returns seconds."""
    start = time.perf_counter()
    for first in range(0, len(prompts), batch_size):
        chunk = slice(first, first + batch_size)
        hf_generate(model, prompts[chunk], max(outputs[chunk]))
    return time.perf_counter() - start


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def plot(name: str, data: dict[str, Any]) -> Path:
    """One panel per measured part: ours against its reference, targets in the titles."""
    import matplotlib  # noqa: PLC0415 (the benchmark's other parts do not need it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [p for p in (_panel_a(data), _panel_b(data), _panel_c(data)) if p is not None]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.6 * max(1, len(panels)), 4))
    for ax, (title, labels, values, unit) in zip(_as_list(axes), panels, strict=False):
        bars = ax.bar(labels, values, color=["#4c72b0", "#dd8452", "#55a868"][: len(values)])
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit)
    fig.suptitle(f"inferplane engine, {data['model']} bf16, {data['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


Panel = tuple[str, list[str], list[float], str]


def _panel_a(data: dict[str, Any]) -> Panel | None:
    a = data.get("decode_batch1")
    if a is None:
        return None
    title = f"(a) batch-1 decode: {a['ours_fraction_of_roofline']:.0%} of roofline (target 50%)"
    values = [a["roofline_tokens_per_s"], a["ours_tokens_per_s"], a["transformers_tokens_per_s"]]
    return title, ["roofline", "inferplane", "transformers"], values, "tokens/s"


def _panel_b(data: dict[str, Any]) -> Panel | None:
    b = data.get("trace_concurrent")
    if b is None:
        return None
    title = f"(b) {b['requests']} trace requests: {b['speedup']}x (target 2.5x)"
    values = [b["ours_output_tokens_per_s"], b["transformers_output_tokens_per_s"]]
    labels = ["inferplane", f"transformers\nstatic batch {b['transformers_batch_size']}"]
    return title, labels, values, "output tokens/s"


def _panel_c(data: dict[str, Any]) -> Panel | None:
    c = data.get("prefix_caching")
    if c is None:
        return None
    title = (
        f"(c) TTFT, 90% shared: {c['ttft_speedup']}x (target 5x)\n"
        f"cost at 0% sharing: {c['zero_sharing_cost']:+.1%} (target <= 2%)"
    )
    values = [c["ttft_cache_on_s"], c["ttft_cache_off_s"]]
    return title, ["cache on", "cache off"], values, "seconds to first token"


def _as_list(axes: Any) -> list[Any]:
    return list(axes) if hasattr(axes, "__len__") else [axes]
