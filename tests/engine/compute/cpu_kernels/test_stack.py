"""The compiled decode stack (decode_stack.h, stack.py) per build target: demo:tiny's decode
logits with it and without it (the layers one by one, on the same kernels), in each dtype and
with int8 layers. test_ops*.py compare the stack against torch's ops."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import DTypeName, EngineConfig, QuantName
from tests.engine.reference import chunk, prefill_then_decode


def _decode_logits(runner: TorchModelRunner) -> torch.Tensor:
    prefill, decode = prefill_then_decode()
    runner.forward_logits(StepBatch(prefill))
    return runner.forward_logits(StepBatch(decode))


@pytest.mark.usefixtures("host_at_target_level")
@pytest.mark.parametrize(
    ("dtype", "quantization", "tolerance"),
    [
        ("float32", "none", 1e-4),
        ("float32", "int8", 1e-4),
        ("bfloat16", "none", 0.1),
        ("float16", "none", 2e-2),
    ],
)
def test_the_stack_agrees_with_the_layers_one_by_one(
    kernels: CpuKernels,
    tiny_model_dir: Path,
    dtype: DTypeName,
    quantization: QuantName,
    tolerance: float,
) -> None:
    config = EngineConfig(
        model=str(tiny_model_dir), dtype=dtype, quantization=quantization, kv_cache_bytes=4 << 20
    )
    stacked, layers = (TorchModelRunner.from_config(config) for _ in range(2))
    assert stacked.model.norm.kernels is kernels and stacked.model.stack is not None
    layers.model.stack = None
    got, expected = _decode_logits(stacked), _decode_logits(layers)
    # the same kernels; SwiGLU's exp differs (vectorized where the build has AVX-512)
    assert F.cosine_similarity(got, expected, dim=-1).min() > 0.9999
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=tolerance)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def _decode_many_logits(runner: TorchModelRunner, rows: int) -> torch.Tensor:
    """A decode step of `rows` sequences (after their prefill), one KV block each."""
    prompts = [list(range(3 + i, 13 + i)) for i in range(rows)]
    runner.forward_logits(StepBatch([chunk(f"s{i}", p, 0, [i]) for i, p in enumerate(prompts)]))
    step = [chunk(f"s{i}", [7 + i], len(p), [i]) for i, p in enumerate(prompts)]
    return runner.forward_logits(StepBatch(step))


@pytest.mark.usefixtures("host_at_target_level")
@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-4), ("bfloat16", 0.1)])
@pytest.mark.parametrize("rows", [3, 5, 16])
def test_the_stack_agrees_with_the_layers_at_decode_batch_sizes(
    kernels: CpuKernels, tiny_model_dir: Path, dtype: DTypeName, tolerance: float, rows: int
) -> None:
    """Steps the column linears take (from 3 rows in bfloat16 on AVX512_BF16 builds, 5 in
    float32 on AVX-512 ones): the stack where it covers them, the layers where it does not."""
    config = EngineConfig(model=str(tiny_model_dir), dtype=dtype, kv_cache_bytes=4 << 20)
    stacked, layers = (TorchModelRunner.from_config(config) for _ in range(2))
    assert stacked.model.stack is not None
    layers.model.stack = None
    got, expected = _decode_many_logits(stacked, rows), _decode_many_logits(layers, rows)
    assert F.cosine_similarity(got, expected, dim=-1).min() > 0.9999
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=tolerance)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
