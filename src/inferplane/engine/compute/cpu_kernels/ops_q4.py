"""Typed torch-facing wrappers over the 4-bit block linear (linear_q4.c).

The same library as ops.CpuKernels (load_library builds it once per target); these bindings
live apart so the 4-bit format keeps to its own files. Inputs are float32 CPU tensors; the
weight is a `Q4Blocks` (codes, float16 scales, float16 mins for Q4_1), see quant4.py.
"""

import ctypes
import functools
from dataclasses import dataclass

import torch

from inferplane.engine.compute.cpu_kernels.build import (
    BuildTarget,
    kernel_library,
)

_P = ctypes.c_void_p
_I = ctypes.c_int64
Q4_BLOCK = 32  # values a block
Q4_MAX_ROWS = 16  # up to how many input rows the streaming kernel is meant for (decode)


@dataclass(frozen=True)
class Q4Blocks:
    """A weight [n, k] as 4-bit blocks: codes [n, k / 2] uint8 (per block of 32, byte j holds
    value j in its low nibble and value j + 16 in its high one), scale [n, k / 32] float16 and,
    for Q4_1, min [n, k / 32] float16 (None: Q4_0). Value = scale * (code - 8) for Q4_0,
    scale * code + min for Q4_1."""

    codes: torch.Tensor
    scale: torch.Tensor
    min: torch.Tensor | None

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.codes.shape[0], self.codes.shape[1] * 2))

    def rows(self, start: int, end: int) -> "Q4Blocks":
        low = None if self.min is None else self.min[start:end]
        return Q4Blocks(self.codes[start:end], self.scale[start:end], low)


class Q4Kernels:
    def __init__(self, library: ctypes.CDLL) -> None:
        self._linear = library.ip_linear_q4_f32
        self._linear.argtypes = [_P, _P, _P, _P, _P, _P, _I, _I, _I, ctypes.c_int]
        self._linear.restype = ctypes.c_int  # -1: no memory for the quantized input rows
        self._dequantize = library.ip_dequantize_q4_f32
        self._dequantize.argtypes = [_P, _P, _P, _P, _I, _I]
        self._dequantize.restype = None
        library.ip_linear_q4_isa.restype = ctypes.c_char_p
        self.isa: str = library.ip_linear_q4_isa().decode()  # vnni, avx2 or portable

    def __deepcopy__(self, memo: dict[int, object]) -> "Q4Kernels":
        """The same object, as CpuKernels: the library's functions hold no state."""
        return self

    def linear(self, x: torch.Tensor, w: Q4Blocks, bias: torch.Tensor | None) -> torch.Tensor:
        """x [M, K] float32 contiguous, w [N, K] as blocks (contiguous), bias [N] float32 or
        None -> x W^T + bias [M, N], each input row rounded to int8 per block of 32 first."""
        rows, (n, k) = x.shape[0], w.shape
        out = x.new_empty(rows, n)
        failed = self._linear(
            x.data_ptr(),
            w.codes.data_ptr(),
            w.scale.data_ptr(),
            None if w.min is None else w.min.data_ptr(),
            None if bias is None else bias.data_ptr(),
            out.data_ptr(),
            rows,
            n,
            k,
            torch.get_num_threads(),
        )
        if failed:
            raise MemoryError(f"linear_q4: no memory for {rows} quantized input rows")
        return out

    def dequantize(self, w: Q4Blocks) -> torch.Tensor:
        """The blocks' values as float32 [n, k] (exact: each is a float16 times a small
        integer, plus a float16 for Q4_1)."""
        n, k = w.shape
        out = torch.empty(n, k, dtype=torch.float32)
        minimum = None if w.min is None else w.min.data_ptr()
        self._dequantize(w.codes.data_ptr(), w.scale.data_ptr(), minimum, out.data_ptr(), n, k)
        return out


def q4_kernels(target: BuildTarget | None = None) -> Q4Kernels | None:
    """The 4-bit kernels of the library cpu_kernels(target) uses, or None where the kernels
    are off or cannot be built."""
    library = kernel_library(target)
    return None if library is None else _wrap(library)


@functools.cache  # one wrapper per library, which load_library itself builds once
def _wrap(library: ctypes.CDLL) -> Q4Kernels:
    return Q4Kernels(library)
