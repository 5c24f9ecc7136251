"""The int8 weight-streaming linear (linear_int8.c) against the dequantized F.linear, once per
build target this CPU can run (see conftest.py): exact where it widens int8, within the
input's rounding where it quantizes the input (VNNI, or AVX2's vpmaddubsw)."""

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.cpu_kernels.build import BuildTarget
from inferplane.engine.compute.quant import dequantize, quantize_per_channel
from tests.engine.compute.cpu_kernels.threads import same_on_one_and_two_threads


def _operands(
    rows: int, n: int, k: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=generator)
    q, scale = quantize_per_channel(torch.randn(n, k, generator=generator))
    return x, q, scale


def _close_to_dequantized(  # noqa: PLR0917 (the product's operands)
    kernels: CpuKernels,
    got: torch.Tensor,
    x: torch.Tensor,
    q: torch.Tensor,
    scale: torch.Tensor,
    b: torch.Tensor | None,
) -> None:
    """The float32 product of the dequantized weight: to float32 summation order where the
    kernel widens int8 exactly; where it rounds each input row to int8 per block of 32 (the
    VNNI path), within the bound that rounding sets: each input value moves by at most half
    its block's step (max |x| / 127 / 2), so an output moves by at most scale times the sum
    over blocks of that half step times the block's |q|."""
    expected = F.linear(x, dequantize(q, scale, torch.float32), b)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    k = x.shape[1]
    if not kernels.int8_quantizes_input(k):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
        return
    half_step = x.abs().reshape(x.shape[0], k // 32, 32).amax(-1) / 127 / 2  # [m, blocks]
    block_q = q.abs().float().reshape(q.shape[0], k // 32, 32).sum(-1)  # [n, blocks]
    bound = (half_step @ block_q.T) * scale
    assert bool(((got - expected).abs() <= bound * 1.001 + 1e-4).all())
    assert F.cosine_similarity(got.flatten(), expected.flatten(), dim=0) > 0.9999


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 8, 9, 16])
@pytest.mark.parametrize(("n", "k"), [(96, 576), (37, 100), (5, 64), (64, 1536), (3, 7), (9, 96)])
def test_int8_linear_matches_the_dequantized_product(
    kernels: CpuKernels, rows: int, n: int, k: int
) -> None:
    """Row counts within a tile, a full tile and past it; widths that are a multiple of the
    vector step and ones with a scalar tail (100, 7)."""
    x, q, scale = _operands(rows, n, k, seed=rows * 1000 + n)
    _close_to_dequantized(kernels, kernels.linear_int8(x, q, scale, None), x, q, scale, None)


def test_int8_linear_adds_the_bias_and_handles_extreme_weights(kernels: CpuKernels) -> None:
    """Every int8 value the quantizer makes (-127..127, the sign widened), and a bias."""
    x, _, scale = _operands(2, 255, 64, seed=3)
    q = torch.arange(-127, 128, dtype=torch.int8)[:, None].repeat(1, 64)
    bias = 10 * torch.randn(255)
    got = kernels.linear_int8(x, q, scale, bias)
    _close_to_dequantized(kernels, got, x, q, scale, bias)


def test_int8_linear_uses_every_thread_it_is_given(kernels: CpuKernels) -> None:
    """The same result with one thread and with two (rows split between them)."""
    x, q, scale = _operands(3, 301, 256, seed=5)
    assert same_on_one_and_two_threads(lambda: kernels.linear_int8(x, q, scale, None))


def test_int8_linear_quantizes_the_input_where_the_build_has_the_instructions(
    kernels: CpuKernels, target: BuildTarget
) -> None:
    """VNNI on the AVX512_BF16 build (widths a multiple of 64), vpmaddubsw on the AVX2 and
    AVX-512 ones (a multiple of 32); exact everywhere else."""
    step = {"x86-64-v4-bf16": 64, "x86-64-v4": 32, "x86-64-v3": 32}.get(target.name)
    for k in (576, 64, 96, 100):
        assert kernels.int8_quantizes_input(k) == (step is not None and k % step == 0), k
