"""The per-layer kernels' float32 copies against the torch ops they replace, per build target
(see conftest.py); then demo:tiny and SmolLM2 in float32 with the kernels on and off. float32
sums in another order, so results agree to float32 rounding, not bit for bit."""

from pathlib import Path

import pytest
import torch

from inferplane.engine.compute.attention import ChunkSpan, _decode_attention, build_metadata
from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.models.layers import RMSNorm
from tests.engine.compute.cpu_kernels.kernel_cases import (
    logits_with_and_without_kernels,
    rope_cache_case,
)
from tests.engine.compute.cpu_kernels.threads import same_on_one_and_two_threads

F32 = torch.float32


def _close(got: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=2e-5)


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_the_kernels_apply_to_float32_on_cpu() -> None:
    assert CpuKernels.applies(torch.device("cpu"), F32)
    assert CpuKernels.applies(torch.device("cpu"), torch.float16)  # see test_ops_f16.py
    assert not CpuKernels.applies(torch.device("cpu"), torch.int8)
    assert not CpuKernels.applies(torch.device("cuda"), F32)


@pytest.mark.parametrize("width", [576, 100])
def test_rms_norm(kernels: CpuKernels, width: int) -> None:
    x, weight = _randn(0, 5, width), _randn(1, width)
    _close(kernels.rms_norm(x, weight, 1e-6), RMSNorm(weight, 1e-6)(x))


def test_add_rms_norm_updates_the_residual_in_place(kernels: CpuKernels) -> None:
    x, residual, weight = _randn(0, 3, 64), _randn(1, 3, 64), _randn(2, 64)
    expected_normed, expected_sum = RMSNorm(weight, 1e-5).add_forward(x, residual.clone())
    normed, summed = kernels.add_rms_norm(x, residual, weight, 1e-5)
    assert summed.data_ptr() == residual.data_ptr()
    assert torch.equal(summed, expected_sum)  # one float32 addition, as torch does it
    _close(normed, expected_normed)


def test_rope_cache_rotates_and_writes_the_slots(kernels: CpuKernels) -> None:
    heads, kv_heads, dim, rows = 9, 3, 64, 3
    qkv = _randn(0, rows, heads + 2 * kv_heads, dim)
    for got, expected in rope_cache_case(kernels, qkv, kv_heads):
        _close(got, expected)


def test_decode_attention_matches_the_torch_path(kernels: CpuKernels) -> None:
    """Three sequences of different lengths (padding to honour), GQA 3:1 as SmolLM2 has."""
    heads, kv_heads, dim, block = 9, 3, 64, 16
    k_cache, v_cache = _randn(0, 8 * block, kv_heads, dim), _randn(1, 8 * block, kv_heads, dim)
    spans = [ChunkSpan(40, 1, [3, 1, 6]), ChunkSpan(5, 1, [0]), ChunkSpan(20, 1, [7, 2])]
    group = build_metadata(spans, block, torch.device("cpu")).decode
    assert group is not None and group.bias is not None
    q = _randn(2, 3, heads, dim)
    got = kernels.decode_attention(
        q, k_cache, v_cache, group.context_slots, group.lengths, dim**-0.5
    )
    _close(got, _decode_attention(q, k_cache, v_cache, group))


@pytest.mark.parametrize("dim", [64, 20])
def test_decode_attention_over_a_batch_of_sixteen(kernels: CpuKernels, dim: int) -> None:
    """A decode batch as 16 clients make it: contexts of 1 to 130 positions (whole blocks of
    8 positions and the ones left over), and a head width that is not a multiple of 8 (the
    kernel's one-position-at-a-time path alone)."""
    heads, kv_heads, block = 9, 3, 16
    lengths = [1, 7, 8, 9, 15, 16, 17, 33, 64, 65, 71, 100, 127, 128, 129, 130]
    blocks = 4 + sum(-(-n // block) for n in lengths)
    k_cache = _randn(0, blocks * block, kv_heads, dim)
    v_cache = _randn(1, blocks * block, kv_heads, dim)
    order = torch.randperm(blocks, generator=torch.Generator().manual_seed(3)).tolist()
    spans, used = [], 0
    for n in lengths:
        count = -(-n // block)
        spans.append(ChunkSpan(n - 1, 1, order[used : used + count]))
        used += count
    group = build_metadata(spans, block, torch.device("cpu")).decode
    assert group is not None
    q = _randn(2, len(lengths), heads, dim)
    got = kernels.decode_attention(
        q, k_cache, v_cache, group.context_slots, group.lengths, dim**-0.5
    )
    _close(got, _decode_attention(q, k_cache, v_cache, group))


@pytest.mark.parametrize("dtype", [torch.bfloat16, F32])
def test_decode_attention_is_the_same_split_over_threads(
    kernels: CpuKernels, dtype: torch.dtype
) -> None:
    """One sequence on two threads: its KV heads are split between them (one sweep each)."""
    heads, kv_heads, dim, block = 9, 3, 64, 16
    k_cache, v_cache = _randn(0, 4 * block, kv_heads, dim), _randn(1, 4 * block, kv_heads, dim)
    group = build_metadata([ChunkSpan(50, 1, [2, 0, 3, 1])], block, torch.device("cpu")).decode
    assert group is not None
    q = _randn(2, 1, heads, dim).to(dtype)
    k_cache, v_cache = k_cache.to(dtype), v_cache.to(dtype)
    args = (q, k_cache, v_cache, group.context_slots, group.lengths, dim**-0.5)
    assert same_on_one_and_two_threads(lambda: kernels.decode_attention(*args))


def _agree_with_and_without_kernels(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefill step, then a decode step of two sequences (the kernels' decode path): the
    same logits to float32 noise, and the same greedy tokens."""
    pairs = logits_with_and_without_kernels(
        directory, "float32", monkeypatch, kv_cache_bytes=16 << 20
    )
    for got, expected in pairs:
        # sums in another order, compounded over the layers (SmolLM2: 30): logits of ~10
        torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-4)
        assert torch.equal(got.argmax(-1), expected.argmax(-1))


@pytest.mark.usefixtures("host_at_target_level")
def test_demo_tiny_in_f32_agrees_with_and_without_kernels(
    kernels: CpuKernels, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agree_with_and_without_kernels(tiny_model_dir, monkeypatch)


@pytest.mark.slow
def test_smollm2_in_f32_agrees_with_and_without_kernels(
    smollm2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real weights, on the host's own build."""
    _agree_with_and_without_kernels(smollm2_dir, monkeypatch)
