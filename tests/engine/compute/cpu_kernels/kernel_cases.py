"""What the per-dtype kernel tests (test_ops.py, test_ops_f16.py, test_ops_f32.py) share: the
rotary + KV-write case, and a model's logits step by step with the kernels on and off. Each
test keeps its own tolerance."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.cpu_kernels.build import DISABLE_ENV
from inferplane.engine.compute.loader import RopeConfig
from inferplane.engine.compute.models.layers import Rotary
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import DTypeName, EngineConfig
from tests.engine.reference import prefill_then_decode

SLOTS, CACHE_SLOTS = [5, 2, 9], 12


def rope_cache_case(
    kernels: CpuKernels, qkv: torch.Tensor, kv_heads: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """rope_cache over qkv [3, heads + 2 kv_heads, dim] at positions 0, 7 and 30 into slots
    5, 2 and 9 of zeroed caches: checks that the values land as they are and that no other
    slot is written; returns (rotated queries, torch's), (keys in their slots, torch's)."""
    width, dim = qkv.shape[1:]
    heads = width - 2 * kv_heads
    rotary = Rotary(RopeConfig(theta=10000.0), dim, 64, qkv.dtype)
    cos, sin = rotary.tables(torch.tensor([0, 7, 30]))
    slots = torch.tensor(SLOTS)
    k_cache = torch.zeros(CACHE_SLOTS, kv_heads, dim, dtype=qkv.dtype)
    v_cache = torch.zeros_like(k_cache)
    q = kernels.rope_cache(qkv, cos, sin, slots, k_cache, v_cache)
    rotated = rotary.rotate(qkv[:, : heads + kv_heads], cos, sin)
    assert torch.equal(v_cache[slots], qkv[:, heads + kv_heads :])
    untouched = [i for i in range(CACHE_SLOTS) if i not in SLOTS]
    assert not k_cache[untouched].any() and not v_cache[untouched].any()
    return (q, rotated[:, :heads]), (k_cache[slots], rotated[:, heads:])


def logits_with_and_without_kernels(
    directory: Path,
    dtype: DTypeName,
    monkeypatch: pytest.MonkeyPatch,
    *,
    expect: CpuKernels | None = None,
    kv_cache_bytes: int = 4 << 20,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logits with the kernels, logits without) for a prefill step, then a decode step of two
    sequences (the kernels' decode path); `expect`: the kernels the model must have picked."""
    config = EngineConfig(model=str(directory), dtype=dtype, kv_cache_bytes=kv_cache_bytes)
    with_kernels = TorchModelRunner.from_config(config)
    monkeypatch.setenv(DISABLE_ENV, "0")
    without = TorchModelRunner.from_config(config)
    assert with_kernels.model.norm.kernels is not None
    # the decode step's two rows go through the compiled layer stack (decode_stack.h)
    assert with_kernels.model.stack is not None
    assert expect is None or with_kernels.model.norm.kernels is expect
    assert without.model.norm.kernels is None
    for step in prefill_then_decode():
        batch = StepBatch(step)
        yield with_kernels.forward_logits(batch), without.forward_logits(batch)
