"""The weight-streaming linear (linear.c) against F.linear in bfloat16 and float32, and the
column linear for decode batches (linear_cols.c: float32, and bfloat16 on AVX512_BF16 builds),
once per build target this CPU can run (see conftest.py), and the layer that dispatches to them
by the number of rows."""

import copy

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.cpu_kernels.ops import COLS_MAX_ROWS
from inferplane.engine.compute.models.layers import (
    COLS_ROWS,
    NO_COLS,
    STREAM_ROWS,
    Linear,
    PackedLinear,
    StreamLinear,
)
from tests.engine.compute.cpu_kernels.threads import same_on_one_and_two_threads

BF16, F32 = torch.bfloat16, torch.float32
CPU = torch.device("cpu")


def _close_to_f_linear(
    got: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
) -> None:
    """float32: F.linear's result to float32 rounding. bfloat16: the float32 product rounded
    once (as oneDNN rounds it), so within a rounding step of F.linear's."""
    expected = F.linear(x, w, b)
    assert got.dtype == x.dtype and got.shape == expected.shape
    if x.dtype == F32:
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
        return
    exact = F.linear(x.float(), w.float(), None if b is None else b.float())
    torch.testing.assert_close(got.float(), exact, atol=1e-2, rtol=2**-7)
    assert (got.float() - expected.float()).abs().max() <= 2**-6 * expected.float().abs().max()


@pytest.mark.parametrize("dtype", [BF16, F32])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 7, 8, 9, 16])
@pytest.mark.parametrize(("n", "k"), [(96, 576), (37, 100), (5, 64), (64, 1536)])
def test_linear_matches_f_linear(
    kernels: CpuKernels, dtype: torch.dtype, rows: int, n: int, k: int
) -> None:
    """Every row count up to two tiles and past, widths that are and are not a multiple of
    the vector step (100: a scalar tail), and a row count not a multiple of anything."""
    generator = torch.Generator().manual_seed(rows * 1000 + n)
    x = torch.randn(rows, k, generator=generator).to(dtype)
    w = torch.randn(n, k, generator=generator).to(dtype)
    _close_to_f_linear(kernels.linear(x, w, None), x, w, None)


@pytest.mark.parametrize("dtype", [BF16, F32])
def test_linear_adds_the_bias(kernels: CpuKernels, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 64, generator=generator).to(dtype)
    w = torch.randn(48, 64, generator=generator).to(dtype)
    bias = (10 * torch.randn(48, generator=generator)).to(dtype)
    _close_to_f_linear(kernels.linear(x, w, bias), x, w, bias)


@pytest.mark.parametrize("dtype", [BF16, F32])
def test_linear_uses_every_thread_it_is_given(kernels: CpuKernels, dtype: torch.dtype) -> None:
    """The same result with one thread and with two (rows split between them)."""
    x, w = torch.randn(3, 256).to(dtype), torch.randn(301, 256).to(dtype)
    assert same_on_one_and_two_threads(lambda: kernels.linear(x, w, None))


@pytest.mark.parametrize("dtype", [BF16, F32])
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 8, 16, 17, 64])
def test_stream_linear_streams_few_rows_and_hands_on_the_rest(
    kernels: CpuKernels, dtype: torch.dtype, rows: int
) -> None:
    w, bias = torch.randn(80, 64).to(dtype), torch.randn(80).to(dtype)
    layer = StreamLinear(w, bias, kernels=kernels)
    packs = PackedLinear.supported(CPU, dtype)
    assert type(layer.large) is (PackedLinear if packs else Linear)
    cols_from, cols_to = COLS_ROWS.get((dtype, kernels.isa), (NO_COLS, 0))
    assert layer.stream_rows == min(STREAM_ROWS[dtype, packs], cols_from - 1)
    assert layer.max_rows == max(layer.stream_rows, cols_to)
    x = torch.randn(rows, 64).to(dtype)
    got = layer(x)
    if rows <= layer.stream_rows:
        assert torch.equal(got, kernels.linear(x, w, bias))
    elif rows <= layer.max_rows:
        assert torch.equal(got, kernels.linear_cols(x, w, bias))
    else:
        assert torch.equal(got, layer.large(x))
    _close_to_f_linear(got, x, w, bias)


def _cols_built(kernels: CpuKernels, dtype: torch.dtype) -> None:
    if dtype == BF16 and kernels.isa != "avx512bf16":
        pytest.skip(f"the bfloat16 column linear needs an AVX512_BF16 build, not {kernels.isa}")


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 8, 9, 15, 16])
@pytest.mark.parametrize(("n", "k"), [(96, 576), (37, 100), (5, 64), (64, 1536), (1, 3)])
def test_linear_cols_matches_f_linear(
    kernels: CpuKernels, dtype: torch.dtype, rows: int, n: int, k: int
) -> None:
    """Decode batches: row counts that fill the lanes and that do not (bfloat16 packs 4, 8 or
    16 rows a vector), weight row counts that are and are not a multiple of the 8 read side
    by side, widths with a tail past the vector loop's chunks."""
    _cols_built(kernels, dtype)
    generator = torch.Generator().manual_seed(rows * 1000 + n)
    x = torch.randn(rows, k, generator=generator).to(dtype)
    w = torch.randn(n, k, generator=generator).to(dtype)
    bias = torch.randn(n, generator=generator).to(dtype)
    _close_to_f_linear(kernels.linear_cols(x, w, None), x, w, None)
    _close_to_f_linear(kernels.linear_cols(x, w, bias), x, w, bias)


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_linear_cols_refuses_more_rows_than_lanes(kernels: CpuKernels, dtype: torch.dtype) -> None:
    x, w = torch.randn(COLS_MAX_ROWS + 1, 32).to(dtype), torch.randn(8, 32).to(dtype)
    with pytest.raises(ValueError, match="1 to 16"):
        kernels.linear_cols(x, w, None)


def test_linear_cols_in_bfloat16_is_refused_without_avx512_bf16(kernels: CpuKernels) -> None:
    if kernels.isa == "avx512bf16":
        pytest.skip("this build has the bfloat16 column linear")
    x, w = torch.randn(4, 32).to(BF16), torch.randn(8, 32).to(BF16)
    with pytest.raises(ValueError, match="1 to 16"):
        kernels.linear_cols(x, w, None)


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_linear_cols_uses_every_thread_it_is_given(kernels: CpuKernels, dtype: torch.dtype) -> None:
    _cols_built(kernels, dtype)
    x, w = torch.randn(16, 256).to(dtype), torch.randn(301, 256).to(dtype)
    assert same_on_one_and_two_threads(lambda: kernels.linear_cols(x, w, None))


def test_stream_linear_is_for_the_kernels_dtypes_on_cpu() -> None:
    assert StreamLinear.supported(CPU, BF16) and StreamLinear.supported(CPU, F32)
    assert StreamLinear.supported(CPU, torch.float16)  # linear_f16.c; see test_ops_f16.py
    assert not StreamLinear.supported(CPU, torch.int8)
    assert not StreamLinear.supported(torch.device("cuda"), BF16)


@pytest.mark.parametrize("rows", [1, 16, 64])
def test_stream_linear_without_a_packed_copy_holds_the_weight_once(
    kernels: CpuKernels, rows: int
) -> None:
    w, bias = torch.randn(80, 64).to(BF16), torch.randn(80).to(BF16)
    layer = StreamLinear(w, bias, kernels=kernels, pack=False)
    assert type(layer.large) is Linear and layer.large.weight is layer.weight
    assert layer.max_rows == STREAM_ROWS[BF16, False]
    x = torch.randn(rows, 64).to(BF16)
    _close_to_f_linear(layer(x), x, w, bias)


def test_a_deep_copy_shares_the_kernels(kernels: CpuKernels) -> None:
    # float32 (a oneDNN-packed bfloat16 weight is an opaque tensor deepcopy cannot read)
    layer = StreamLinear(torch.randn(8, 16), kernels=kernels)
    copied = copy.deepcopy(layer)  # as a test's perturbed model copy does
    assert copied.kernels is kernels and copied.weight is not layer.weight
    assert torch.equal(copied.weight, layer.weight)
