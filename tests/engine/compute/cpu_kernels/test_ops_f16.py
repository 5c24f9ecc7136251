"""The float16 kernels (small_ops.h's f16 copy, linear_f16.c) against the torch ops they
replace, then the tiny model in float16 with the kernels on and off; once per build target
this CPU can run (see conftest.py): F16C's conversions and the plain C ones."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.attention import ChunkSpan, _decode_attention, build_metadata
from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.models.layers import (
    STREAM_ROWS,
    RMSNorm,
    StreamLinear,
    WidenedLinear,
)
from tests.engine.compute.cpu_kernels.kernel_cases import (
    logits_with_and_without_kernels,
    rope_cache_case,
)

F16 = torch.float16
ULP = 2**-10  # one float16 step at magnitude 1


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(F16)


def test_conversions_match_torch_bit_for_bit(kernels: CpuKernels) -> None:
    """Every float16 value widened, and float32 values over the whole range (subnormals,
    ties, overflow, infinities, NaN) narrowed, as torch converts them."""
    every = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(F16)
    widened, expected = kernels.convert_f16(every), every.float()
    assert torch.equal(widened.isnan(), expected.isnan())
    assert torch.equal(widened[~expected.isnan()], expected[~expected.isnan()])
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(100_000, generator=generator) * torch.logspace(-10, 6, 100_000)
    edges = [65504.0, 65519.0, 65520.0, 2**-24, 1.5 * 2**-24, 2**-25, 1e-9, 1.0 + 2**-11]
    specials = torch.tensor([*edges, float("inf"), -float("inf"), float("nan")])
    values = torch.cat([values, specials, -specials])
    narrowed = kernels.convert_f16(values)
    assert torch.equal(narrowed.view(torch.int16), values.to(F16).view(torch.int16))


@pytest.mark.parametrize("width", [576, 100])
def test_rms_norm_matches_torch_bit_for_bit(kernels: CpuKernels, width: int) -> None:
    x, weight = _randn(1, 5, width), _randn(2, width)
    assert torch.equal(kernels.rms_norm(x, weight, 1e-6), RMSNorm(weight, 1e-6)(x))


def test_add_rms_norm_updates_the_residual_in_place(kernels: CpuKernels) -> None:
    x, residual, weight = _randn(1, 3, 64), _randn(2, 3, 64), _randn(3, 64)
    expected_normed, expected_sum = RMSNorm(weight, 1e-5).add_forward(x, residual.clone())
    normed, summed = kernels.add_rms_norm(x, residual, weight, 1e-5)
    assert summed.data_ptr() == residual.data_ptr()
    assert torch.equal(summed, expected_sum)
    assert torch.equal(normed, expected_normed)


def test_rope_cache_rotates_and_writes_the_slots(kernels: CpuKernels) -> None:
    heads, kv_heads, dim, rows = 6, 2, 32, 3
    qkv = _randn(4, rows, heads + 2 * kv_heads, dim)
    for got, expected in rope_cache_case(kernels, qkv, kv_heads):
        assert (got.float() - expected.float()).abs().max() <= 2 * ULP * 4


def test_decode_attention_matches_the_torch_path(kernels: CpuKernels) -> None:
    """Three sequences of different lengths (the padding honoured), GQA 7:1."""
    heads, kv_heads, dim, block = 14, 2, 64, 16
    k_cache, v_cache = _randn(5, 8 * block, kv_heads, dim), _randn(6, 8 * block, kv_heads, dim)
    spans = [ChunkSpan(40, 1, [3, 1, 6]), ChunkSpan(5, 1, [0]), ChunkSpan(20, 1, [7, 2])]
    group = build_metadata(spans, block, torch.device("cpu")).decode
    assert group is not None
    q = _randn(7, 3, heads, dim)
    got = kernels.decode_attention(
        q, k_cache, v_cache, group.context_slots, group.lengths, dim**-0.5
    )
    expected = _decode_attention(q, k_cache, v_cache, group)
    assert got.dtype == F16
    assert (got.float() - expected.float()).abs().max() < 5e-3
    assert F.cosine_similarity(got.float().flatten(), expected.float().flatten(), dim=0) > 0.9999


@pytest.mark.parametrize("rows", [1, 3, 8, 9, 16])
@pytest.mark.parametrize(("n", "k"), [(96, 576), (37, 100), (5, 64), (3, 7)])
def test_linear_is_the_float32_product_rounded_once(
    kernels: CpuKernels, rows: int, n: int, k: int
) -> None:
    x, w, bias = _randn(rows, rows, k), _randn(n, n, k), _randn(9, n)
    exact = F.linear(x.float(), w.float(), bias.float())
    got = kernels.linear(x, w, bias)
    assert got.dtype == F16 and got.shape == exact.shape
    torch.testing.assert_close(got.float(), exact, atol=1e-3, rtol=ULP)


@pytest.mark.parametrize("rows", [1, 16, 17, 64])
def test_stream_linear_streams_few_rows_and_widens_the_rest(kernels: CpuKernels, rows: int) -> None:
    w, bias = _randn(1, 80, 64), _randn(2, 80)
    layer = StreamLinear(w, bias, kernels=kernels)
    assert isinstance(layer.large, WidenedLinear) and layer.max_rows == STREAM_ROWS[F16, False]
    x = _randn(3, rows, 64)
    got = layer(x)
    if rows <= layer.max_rows:
        assert torch.equal(got, kernels.linear(x, w, bias))
    exact = F.linear(x.float(), w.float(), bias.float())
    torch.testing.assert_close(got.float(), exact, atol=1e-3, rtol=ULP)


def test_widened_linear_in_tiles_matches_f_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    from inferplane.engine.compute import quant  # noqa: PLC0415 (the tile size, patched)

    monkeypatch.setattr(quant, "DEQUANT_TILE_ELEMENTS", 7 * 64)
    w, bias, x = _randn(1, 80, 64), _randn(2, 80), _randn(3, 2, 20, 64)
    got = WidenedLinear(w, bias)(x)
    assert got.shape == (2, 20, 80) and got.dtype == F16
    exact = F.linear(x.float(), w.float(), bias.float())
    torch.testing.assert_close(got.float(), exact, atol=1e-3, rtol=ULP)


@pytest.mark.usefixtures("host_at_target_level")
def test_the_model_in_f16_agrees_with_and_without_kernels(
    kernels: CpuKernels, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefill step then a mixed decode step: the same logits within float16 noise, on a
    host (real or pretended) whose best build is the target's."""
    pairs = logits_with_and_without_kernels(tiny_model_dir, "float16", monkeypatch, expect=kernels)
    for got, expected in pairs:
        assert F.cosine_similarity(got, expected, dim=-1).min() > 0.9999
        torch.testing.assert_close(got, expected, atol=2e-2, rtol=1e-2)
