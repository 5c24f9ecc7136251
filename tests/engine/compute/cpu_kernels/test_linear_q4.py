"""The 4-bit block linear (linear_q4.c) against the float product of the dequantized weight,
once per build target this CPU can run (see conftest.py): within the bound the input's
rounding to int8 (per block of 32) sets, for Q4_0 and Q4_1, at every row count it takes."""

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from inferplane.engine.compute.cpu_kernels.build import BuildTarget
from inferplane.engine.compute.cpu_kernels.ops_q4 import Q4Blocks, Q4Kernels, q4_kernels
from inferplane.engine.compute.quant4 import dequantize_q4, quantize_q4_0
from tests.engine.compute.cpu_kernels.threads import same_on_one_and_two_threads


@pytest.fixture(scope="module")
def q4(target: BuildTarget) -> Q4Kernels:
    built = q4_kernels(target)
    if built is None:
        pytest.skip("no C compiler on this machine")
    return built


def q4_1_blocks(weight: torch.Tensor) -> Q4Blocks:
    """Q4_1 blocks as GGUF stores them (gguf's reference quantizer), split into our arrays."""
    n, k = weight.shape
    raw = quantize(weight.numpy(), GGMLQuantizationType.Q4_1).reshape(n, k // 32, 20)
    scale = torch.from_numpy(raw[..., 0:2].copy().view(np.float16)[..., 0])
    low = torch.from_numpy(raw[..., 2:4].copy().view(np.float16)[..., 0])
    codes = torch.from_numpy(raw[..., 4:].copy()).reshape(n, k // 2)
    return Q4Blocks(codes, scale, low)


def _blocks(kind: str, n: int, k: int, seed: int) -> Q4Blocks:
    weight = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    return quantize_q4_0(weight) if kind == "q4_0" else q4_1_blocks(weight)


def assert_within_input_rounding(
    got: torch.Tensor, x: torch.Tensor, w: Q4Blocks, bias: torch.Tensor | None
) -> None:
    """Each input value moves by at most half its block's step (max |x| / 127 / 2), so an
    output moves by at most the sum over blocks of that half step times the block's sum of
    |w| (the dequantized weight), plus float32 summation order."""
    dense = dequantize_q4(w).double()
    expected = F.linear(x.double(), dense, None if bias is None else bias.double())
    k = x.shape[1]
    half_step = x.double().abs().reshape(x.shape[0], k // 32, 32).amax(-1) / 127 / 2
    block_w = dense.abs().reshape(dense.shape[0], k // 32, 32).sum(-1)
    bound = half_step @ block_w.T
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert bool(((got.double() - expected).abs() <= bound * 1.001 + 1e-4).all())
    assert F.cosine_similarity(got.double().flatten(), expected.flatten(), dim=0) > 0.999


@pytest.mark.parametrize("kind", ["q4_0", "q4_1"])
@pytest.mark.parametrize("rows", [1, 2, 3, 7, 8, 9, 16])
@pytest.mark.parametrize(("n", "k"), [(96, 576), (64, 1536), (5, 64), (37, 96), (3, 32)])
def test_q4_linear_is_within_the_input_rounding_of_the_float_product(
    q4: Q4Kernels, kind: str, rows: int, n: int, k: int
) -> None:
    """Row counts within a tile, a full tile and past it; widths of an even and an odd number
    of blocks (the VNNI build takes two blocks a step)."""
    w = _blocks(kind, n, k, seed=rows * 100 + n)
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows))
    assert_within_input_rounding(q4.linear(x, w, None), x, w, None)


def test_q4_linear_adds_the_bias_and_takes_every_code(q4: Q4Kernels) -> None:
    """Codes 0..15 in every position, extreme and zero scales, large inputs, and a bias."""
    n, k = 16, 128
    codes = (torch.arange(n * k // 2) % 256).to(torch.uint8).reshape(n, k // 2)
    scale = torch.tensor([0.0, 65504.0, -1.0, 1e-4]).repeat(n * k // 32 // 4).reshape(n, -1)
    w = Q4Blocks(codes, scale.to(torch.float16), None)
    x = 100 * torch.randn(3, k, generator=torch.Generator().manual_seed(1))
    bias = torch.randn(n)
    got = q4.linear(x, w, bias)
    assert torch.isfinite(got).all()
    assert_within_input_rounding(got, x, w, bias)
    w1 = Q4Blocks(codes, scale.to(torch.float16), -scale.to(torch.float16) / 3)
    assert_within_input_rounding(q4.linear(x, w1, bias), x, w1, bias)
    one = x[:1]  # one row: 16 weight rows a pass on the VNNI build
    assert_within_input_rounding(q4.linear(one, w1, bias), one, w1, bias)


def test_q4_linear_is_exact_when_the_input_is_already_on_its_int8_grid(q4: Q4Kernels) -> None:
    """Inputs whose blocks hold -127..127 times a power of two round to themselves: the
    product is then the float one up to summation order."""
    k = 256
    grid = torch.randint(-127, 128, (2, k), generator=torch.Generator().manual_seed(2))
    grid[:, ::32] = 127  # each block's largest magnitude is 127 steps
    x = grid.float() * 0.25
    w = _blocks("q4_0", 40, k, seed=3)
    expected = F.linear(x.double(), dequantize_q4(w).double())
    torch.testing.assert_close(q4.linear(x, w, None).double(), expected, rtol=1e-5, atol=1e-3)


def test_q4_linear_uses_every_thread_it_is_given(q4: Q4Kernels) -> None:
    """The same result with one thread and with two (output rows split between them)."""
    w = _blocks("q4_1", 301, 256, seed=5)
    for rows in (1, 3):
        x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(5))
        assert same_on_one_and_two_threads(functools.partial(q4.linear, x, w, None))


@pytest.mark.parametrize("kind", ["q4_0", "q4_1"])
def test_q4_dequantize_matches_torch_and_gguf(q4: Q4Kernels, kind: str) -> None:
    """The C dequantization (prefill's tiles) gives torch's values, and both give gguf's."""
    w = _blocks(kind, 24, 192, seed=7)
    assert torch.equal(q4.dequantize(w), dequantize_q4(w))
    kind_type = GGMLQuantizationType.Q4_0 if kind == "q4_0" else GGMLQuantizationType.Q4_1
    raw = quantize(dequantize_q4(w).numpy(), kind_type)
    assert np.array_equal(dequantize(raw, kind_type), dequantize_q4(w).numpy())


def test_the_build_names_the_path_it_runs(q4: Q4Kernels, target: BuildTarget) -> None:
    expected = {"x86-64-v4-bf16": "vnni", "x86-64-v4": "avx2", "x86-64-v3": "avx2"}
    assert q4.isa == expected.get(target.name, "portable" if target.name == "x86-64" else q4.isa)
