"""The weight-streaming linear (linear.c) against F.linear, once per build target this CPU
can run (see conftest.py), and the layer that dispatches to it by the number of rows."""

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.models.layers import PackedLinear, StreamLinear

BF16 = torch.bfloat16


def _close_to_f_linear(
    got: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
) -> None:
    """Within a bfloat16 rounding step of the float32 product (both round it once; the sums
    differ only in order)."""
    exact = F.linear(x.float(), w.float(), None if b is None else b.float())
    assert got.dtype == BF16 and got.shape == exact.shape
    torch.testing.assert_close(got.float(), exact, atol=1e-2, rtol=2**-7)
    expected = F.linear(x, w, b)
    assert (got.float() - expected.float()).abs().max() <= 2 * 2**-7 * expected.float().abs().max()


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 7, 8, 9, 16])
@pytest.mark.parametrize(("n", "k"), [(96, 576), (37, 100), (5, 64), (64, 1536)])
def test_linear_matches_f_linear(kernels: CpuKernels, rows: int, n: int, k: int) -> None:
    """Every row count up to two tiles and past, widths that are and are not a multiple of
    the vector step (100: a scalar tail), and a row count not a multiple of anything."""
    generator = torch.Generator().manual_seed(rows * 1000 + n)
    x = torch.randn(rows, k, generator=generator).to(BF16)
    w = torch.randn(n, k, generator=generator).to(BF16)
    _close_to_f_linear(kernels.linear(x, w, None), x, w, None)


def test_linear_adds_the_bias(kernels: CpuKernels) -> None:
    generator = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 64, generator=generator).to(BF16), torch.randn(48, 64).to(BF16)
    bias = (10 * torch.randn(48, generator=generator)).to(BF16)
    _close_to_f_linear(kernels.linear(x, w, bias), x, w, bias)


def test_linear_uses_every_thread_it_is_given(kernels: CpuKernels) -> None:
    """The same result with one thread and with two (rows split between them)."""
    x, w = torch.randn(3, 256).to(BF16), torch.randn(301, 256).to(BF16)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernels.linear(x, w, None)
        torch.set_num_threads(2)
        two = kernels.linear(x, w, None)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


@pytest.mark.parametrize("rows", [1, 3, 4, 64])
def test_stream_linear_streams_few_rows_and_hands_on_the_rest(
    kernels: CpuKernels, rows: int
) -> None:
    w, bias = torch.randn(80, 64).to(BF16), torch.randn(80).to(BF16)
    layer = StreamLinear(w, bias, kernels=kernels)
    packs = PackedLinear.supported(torch.device("cpu"), BF16)
    assert isinstance(layer.large, PackedLinear) == packs
    x = torch.randn(rows, 64).to(BF16)
    got = layer(x)
    if rows <= layer.max_rows:
        assert torch.equal(got, kernels.linear(x, w, bias))
    else:
        assert torch.equal(got, layer.large(x))
    _close_to_f_linear(got, x, w, bias)
