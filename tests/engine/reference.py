"""Helpers shared by the runner and model tests: a block allocator and reference logits."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import SequenceChunk, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.sampling_params import SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=64)


def hf_model(directory: Path) -> Any:
    model: Any = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model.eval()


def hf_logits(model: Any, ids: Sequence[int]) -> torch.Tensor:
    with torch.no_grad():
        logits: torch.Tensor = model(torch.tensor([list(ids)])).logits[0]
    return logits.float()


def fp32_runner(directory: Path, kv_bytes: int = 4 << 20) -> TorchModelRunner:
    config = EngineConfig(model=str(directory), dtype="float32", kv_cache_bytes=kv_bytes)
    return TorchModelRunner.from_config(config)


def chunk(
    request_id: str,
    ids: Sequence[int],
    start: int,
    blocks: Sequence[int],
    *,
    sample: bool = True,
    params: SamplingParams = GREEDY,
) -> SequenceChunk:
    return SequenceChunk(request_id, list(ids), start, list(blocks), sample, params)


def prefill_then_decode() -> list[list[SequenceChunk]]:
    """Two steps over two sequences of 37 and 11 prompt tokens: both prefills at once, then a
    decode of each (blocks 0-2 and 3), as a kernels-on / kernels-off comparison runs them."""
    prompt_a, prompt_b = list(range(3, 40)), list(range(50, 61))
    return [
        [chunk("a", prompt_a, 0, [0, 1, 2]), chunk("b", prompt_b, 0, [3])],
        [chunk("a", [7], len(prompt_a), [0, 1, 2]), chunk("b", [9], len(prompt_b), [3])],
    ]


def prefill_logits(
    runner: TorchModelRunner, ids: Sequence[int], blocks: Sequence[int]
) -> torch.Tensor:
    return runner.forward_logits(StepBatch([chunk("r", ids, 0, blocks)]))
