"""The decoder layers of a decode step as one compiled call: which steps take it, and that a
model's deep copy gets its own (that it gives the layer-by-layer path's logits is held on every
build target in tests/engine/compute/cpu_kernels/test_stack.py)."""

import copy
from pathlib import Path

import pytest
import torch

from inferplane.engine.compute.attention import ChunkSpan, build_metadata
from inferplane.engine.compute.cpu_kernels import cpu_kernels
from inferplane.engine.compute.models.llama import LlamaModel
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import SequenceChunk, StepBatch
from inferplane.engine.core.config import DTypeName, EngineConfig, QuantName
from tests.engine.reference import prefill_then_decode

pytestmark = pytest.mark.skipif(cpu_kernels() is None, reason="no compiled CPU kernels here")


def _runner(directory: Path, dtype: DTypeName, quantization: QuantName) -> TorchModelRunner:
    config = EngineConfig(
        model=str(directory), dtype=dtype, quantization=quantization, kv_cache_bytes=4 << 20
    )
    return TorchModelRunner.from_config(config)


def _decode_logits(model: LlamaModel, runner: TorchModelRunner) -> torch.Tensor:
    """The decode step of prefill_then_decode (after its prefill) through `model`."""
    prefill, decode = prefill_then_decode()
    runner.model = model
    runner.forward_logits(StepBatch(prefill))
    return runner.forward_logits(StepBatch(decode))


def test_the_stack_takes_decode_only_steps_of_few_rows(tiny_model_dir: Path) -> None:
    stack = _runner(tiny_model_dir, "bfloat16", "none").model.stack
    assert stack is not None and stack.max_rows >= 2
    prefill, decode = prefill_then_decode()
    mixed = [decode[0], prefill[1]]
    many = [ChunkSpan(5, 1, [i]) for i in range(stack.max_rows + 1)]

    def takes(spans: list[ChunkSpan]) -> bool:
        meta = build_metadata(spans, 16, torch.device("cpu"))
        return stack.takes(sum(span.num_tokens for span in spans), meta)

    def spans(step: list[SequenceChunk]) -> list[ChunkSpan]:
        return [ChunkSpan(c.start_position, len(c.token_ids), c.block_table) for c in step]

    assert takes(spans(decode))
    assert not takes(spans(prefill)) and not takes(spans(mixed)) and not takes(many)


def test_a_deep_copy_runs_over_its_own_weights(tiny_model_dir: Path) -> None:
    """A perturbed copy (as tests/control makes one) must not read the original's weights."""
    runner = _runner(tiny_model_dir, "float32", "none")
    original = runner.model
    noisy = copy.deepcopy(original)
    assert noisy.stack is not None and noisy.stack is not original.stack
    with torch.no_grad():
        for name, weight in noisy.named_buffers():
            if name.startswith("layers.") and weight.dim() == 2:
                weight.mul_(1.5)
    noisy_layers = copy.deepcopy(noisy)
    noisy_layers.stack = None
    got = _decode_logits(noisy, runner)
    torch.testing.assert_close(got, _decode_logits(noisy_layers, runner), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, _decode_logits(original, runner), atol=1e-2)
