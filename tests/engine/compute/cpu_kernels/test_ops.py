"""Each compiled kernel against the torch ops it replaces, on bfloat16 inputs; then the whole
tiny model in bfloat16 with the kernels on and off. Every test runs once per build target
this CPU can run (see conftest.py): the AVX-512, AVX2 and SSE2-only code of the same source."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.attention import ChunkSpan, _decode_attention, build_metadata
from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.cpu_kernels.build import BuildTarget
from inferplane.engine.compute.models.layers import RMSNorm
from tests.engine.compute.cpu_kernels.kernel_cases import (
    logits_with_and_without_kernels,
    rope_cache_case,
)

BF16 = torch.bfloat16
ULP = 2**-7  # one bfloat16 step at magnitude 1


@pytest.fixture
def generator() -> Iterator[torch.Generator]:
    yield torch.Generator().manual_seed(0)


def _randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator).to(BF16)


def test_each_target_builds_its_own_code(kernels: CpuKernels, target: BuildTarget) -> None:
    expected = {
        "x86-64-v4-bf16": "avx512bf16",
        "x86-64-v4": "avx512",
        "x86-64-v3": "avx2",
        "x86-64": "portable",
    }
    assert kernels.isa == expected.get(target.name, kernels.isa)


@pytest.mark.parametrize("width", [896, 100])  # 100: not a multiple of the vector width
def test_rms_norm_matches_torch_bit_for_bit(
    kernels: CpuKernels, generator: torch.Generator, width: int
) -> None:
    x, weight = _randn(generator, 5, width), _randn(generator, width)
    assert torch.equal(kernels.rms_norm(x, weight, 1e-6), RMSNorm(weight, 1e-6)(x))


def test_add_rms_norm_updates_the_residual_in_place(
    kernels: CpuKernels, generator: torch.Generator
) -> None:
    x, residual, weight = (
        _randn(generator, 3, 64),
        _randn(generator, 3, 64),
        _randn(generator, 64),
    )
    expected_normed, expected_sum = RMSNorm(weight, 1e-5).add_forward(x, residual.clone())
    normed, summed = kernels.add_rms_norm(x, residual, weight, 1e-5)
    assert summed.data_ptr() == residual.data_ptr()
    assert torch.equal(summed, expected_sum)
    assert torch.equal(normed, expected_normed)


def test_rope_cache_rotates_and_writes_the_slots(
    kernels: CpuKernels, generator: torch.Generator
) -> None:
    heads, kv_heads, dim, rows = 6, 2, 32, 3
    qkv = _randn(generator, rows, heads + 2 * kv_heads, dim)
    for got, expected in rope_cache_case(kernels, qkv, kv_heads):
        assert (got.float() - expected.float()).abs().max() <= 2 * ULP * 4


def test_decode_attention_matches_the_torch_path(
    kernels: CpuKernels, generator: torch.Generator
) -> None:
    """Three sequences of different lengths (so the kernel must honour the padding), GQA 7:1."""
    heads, kv_heads, dim, block = 14, 2, 64, 16
    k_cache, v_cache = (
        _randn(generator, 8 * block, kv_heads, dim),
        _randn(generator, 8 * block, kv_heads, dim),
    )
    spans = [ChunkSpan(40, 1, [3, 1, 6]), ChunkSpan(5, 1, [0]), ChunkSpan(20, 1, [7, 2])]
    group = build_metadata(spans, block, torch.device("cpu")).decode
    assert group is not None and group.bias is not None
    q = _randn(generator, 3, heads, dim)
    got = kernels.decode_attention(
        q, k_cache, v_cache, group.context_slots, group.lengths, dim**-0.5
    )
    expected = _decode_attention(q, k_cache, v_cache, group)
    # the kernel keeps scores in float32 where torch rounds them to bfloat16 first
    assert (got.float() - expected.float()).abs().max() < 0.03
    assert F.cosine_similarity(got.float().flatten(), expected.float().flatten(), dim=0) > 0.9999


@pytest.mark.usefixtures("host_at_target_level")
def test_the_model_in_bf16_agrees_with_and_without_kernels(
    kernels: CpuKernels, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefill step then a mixed decode step: the same logits within bfloat16 noise, on a
    host (real or pretended) whose best build is the target's."""
    pairs = logits_with_and_without_kernels(tiny_model_dir, "bfloat16", monkeypatch, expect=kernels)
    for got, expected in pairs:
        cosine = F.cosine_similarity(got, expected, dim=-1)
        assert cosine.min() > 0.999, cosine
        # The same top token, but for near-ties: bfloat16 logits a rounding step apart swap
        # where the matrix products round differently (oneDNN's bf16 gemm is AVX-512 only).
        chosen = expected.gather(-1, got.argmax(-1, keepdim=True))[:, 0]
        assert float((expected.max(-1).values - chosen).max()) < 0.1
