"""Typed torch-facing wrappers over the compiled kernels (kernels.c, linear*.c).

Every op takes and returns CPU tensors of one dtype, bfloat16, float16 or float32 (each has
its own compiled copy, picked by the input's dtype); the int8 linear takes float32 inputs.
Callers guarantee the layouts the C side assumes (contiguous rows; see each method);
`CpuKernels.applies` tells a model whether to use them at all. Threads follow
torch.get_num_threads(), read once per call.
"""

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from inferplane.engine.compute.cpu_kernels.build import (
    BuildTarget,
    kernel_library,
)

_P = ctypes.c_void_p
_I = ctypes.c_int64
_F = ctypes.c_float
_T = ctypes.c_int
# the C suffix of each dtype's ops
DTYPES = {torch.bfloat16: "bf16", torch.float16: "f16", torch.float32: "f32"}
COLS_MAX_ROWS = 16  # linear_cols.c: the input rows across one 16-lane vector


@dataclass(frozen=True)
class _Ops:
    """One dtype's per-layer ops, bound."""

    rms_norm: ctypes._CFuncPtr  # type: ignore[name-defined]
    add_rms_norm: ctypes._CFuncPtr  # type: ignore[name-defined]
    attention: ctypes._CFuncPtr  # type: ignore[name-defined]
    rope_cache: ctypes._CFuncPtr  # type: ignore[name-defined]

    @classmethod
    def bind(cls, library: ctypes.CDLL, suffix: str) -> "_Ops":
        def op(name: str, argtypes: list[type]) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
            return _bind(getattr(library, f"ip_{name}_{suffix}"), argtypes)

        return cls(
            rms_norm=op("rms_norm", [_P, _P, _P, _I, _I, _F, _T]),
            add_rms_norm=op("add_rms_norm", [_P, _P, _P, _P, _I, _I, _F, _T]),
            attention=op(
                "decode_attention", [_P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _F, _P, _T]
            ),
            rope_cache=op("rope_cache", [_P, _P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _T]),
        )


class CpuKernels:
    def __init__(self, library: ctypes.CDLL) -> None:
        self._ops = {dtype: _Ops.bind(library, suffix) for dtype, suffix in DTYPES.items()}
        self._linear = {
            dtype: _bind(getattr(library, f"ip_linear_{suffix}"), [_P, _P, _P, _P, _I, _I, _I, _T])
            for dtype, suffix in DTYPES.items()
        }
        self._linear_cols = {
            dtype: _bind(
                getattr(library, f"ip_linear_cols_{DTYPES[dtype]}"), [_P] * 4 + [_I] * 3 + [_T]
            )
            for dtype in (torch.float32, torch.bfloat16)
        }
        for function in self._linear_cols.values():
            function.restype = ctypes.c_int  # -1: rows out of range (or no bf16 kernel built)
        self._linear_i8 = _bind(library.ip_linear_i8_f32, [_P, _P, _P, _P, _P, _I, _I, _I, _T])
        self._linear_i8.restype = ctypes.c_int  # -1: no memory for its scratch
        self._i8_quantizes = _bind(library.ip_linear_i8_quantizes_input, [_I])
        self._i8_quantizes.restype = ctypes.c_int
        self._linear[torch.float16].restype = ctypes.c_int  # -1: no memory for its scratch
        self._stack = {
            dtype: _bind(getattr(library, f"ip_decode_stack_{suffix}"), [_P, _I, _P, _P, _P])
            for dtype, suffix in DTYPES.items()
        }
        for function in self._stack.values():
            function.restype = ctypes.c_int  # -1: a linear had no memory for its scratch
        self._convert = {
            torch.float32: _bind(library.ip_f16_to_f32, [_P, _P, _I]),
            torch.float16: _bind(library.ip_f32_to_f16, [_P, _P, _I]),
        }
        library.ip_isa.restype = ctypes.c_char_p
        self.isa: str = library.ip_isa().decode()

    def __deepcopy__(self, memo: dict[int, object]) -> "CpuKernels":
        """The same object: the loaded library's functions hold no state, and ctypes cannot
        copy them (a model's deep copy shares its kernels)."""
        return self

    @staticmethod
    def applies(device: torch.device, dtype: torch.dtype) -> bool:
        return device.type == "cpu" and dtype in DTYPES

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """x [T, n] contiguous -> weight * normalised x, rounded as torch rounds."""
        out = torch.empty_like(x)
        rows, n = x.shape
        self._ops[x.dtype].rms_norm(
            x.data_ptr(), weight.data_ptr(), out.data_ptr(), rows, n, eps, _threads()
        )
        return out

    def add_rms_norm(
        self, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """residual += x (in place), then (rms_norm(residual), residual)."""
        out = torch.empty_like(x)
        rows, n = x.shape
        self._ops[x.dtype].add_rms_norm(
            x.data_ptr(),
            residual.data_ptr(),
            weight.data_ptr(),
            out.data_ptr(),
            rows,
            n,
            eps,
            _threads(),
        )
        return out, residual

    def rope_cache(  # noqa: PLR0917 (the kernel's operands)
        self,
        qkv: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        slot_mapping: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
    ) -> torch.Tensor:
        """qkv [T, heads + 2 kv_heads, dim] contiguous; cos, sin [T, dim] contiguous (sin's
        first half negated); slot_mapping [T] int64. Writes the rotated keys and the values
        into the caches' slots and returns the rotated queries [T, heads, dim]."""
        rows, width, dim = qkv.shape
        kv_heads = k_cache.shape[1]
        heads = width - 2 * kv_heads
        q = qkv.new_empty(rows, heads, dim)
        self._ops[qkv.dtype].rope_cache(
            qkv.data_ptr(),
            cos.data_ptr(),
            sin.data_ptr(),
            slot_mapping.data_ptr(),
            q.data_ptr(),
            k_cache.data_ptr(),
            v_cache.data_ptr(),
            rows,
            heads,
            kv_heads,
            dim,
            _threads(),
        )
        return q

    def decode_attention(  # noqa: PLR0917 (the kernel's operands)
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        slots: torch.Tensor,
        lengths: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        """q [B, heads, dim] contiguous; caches [slots, kv_heads, dim] contiguous; slots
        [B, S] int64 (padded); lengths [B] int64 -> attention output [B, heads, dim]."""
        batch, heads, dim = q.shape
        kv_heads, max_len, threads = k_cache.shape[1], slots.shape[1], _threads()
        out = torch.empty_like(q)
        scratch = torch.empty(threads * heads * (2 * dim + max_len), dtype=torch.float32)
        self._ops[q.dtype].attention(
            q.data_ptr(),
            k_cache.data_ptr(),
            v_cache.data_ptr(),
            slots.data_ptr(),
            lengths.data_ptr(),
            out.data_ptr(),
            batch,
            heads,
            kv_heads,
            dim,
            max_len,
            scale,
            scratch.data_ptr(),
            threads,
        )
        return out

    def linear(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """x [M, K] contiguous, weight [N, K] contiguous, bias [N] or None -> x W^T + b [M, N].
        Reads the weight once for all M rows: for decode's few rows (see StreamLinear)."""
        out, failed = _run_linear(self._linear[x.dtype], x, weight, bias)
        if failed:
            raise MemoryError(f"linear: no memory to widen {x.shape[0]} rows to float32")
        return out

    def convert_f16(self, x: torch.Tensor) -> torch.Tensor:
        """float16 -> float32 or float32 -> float16 (contiguous), with the conversions the
        float16 kernels use (common.h): F16C's where the build has it, else plain C."""
        dtype = torch.float32 if x.dtype == torch.float16 else torch.float16
        out = torch.empty_like(x, dtype=dtype)
        self._convert[dtype](x.data_ptr(), out.data_ptr(), x.numel())
        return out

    def linear_int8(
        self, x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """x [M, K] float32 contiguous, q [N, K] int8 contiguous, scale [N] and bias [N] (or
        None) float32 -> (x q^T) * scale + b [M, N], streaming q once for all M rows
        (linear_int8.c; for decode's few rows, see quant.Int8Linear)."""
        rows, n = x.shape[0], q.shape[0]
        out = x.new_empty(rows, n)
        failed = self._linear_i8(
            x.data_ptr(),
            q.data_ptr(),
            scale.data_ptr(),
            None if bias is None else bias.data_ptr(),
            out.data_ptr(),
            rows,
            n,
            q.shape[1],
            _threads(),
        )
        if failed:
            raise MemoryError(f"linear_int8: no memory for {rows} quantized input rows")
        return out

    def int8_quantizes_input(self, k: int) -> bool:
        """Whether linear_int8 at width k rounds the input rows to int8 per block of 32 (the
        VNNI path) rather than computing the dequantized product exactly."""
        return bool(self._i8_quantizes(k))

    def decode_stack(self, dtype: torch.dtype) -> "ctypes._CFuncPtr":  # type: ignore[name-defined]
        """decode_stack.h's function for `dtype`: every decoder layer of a decode step in one
        call (see stack.CompiledStack, which owns its arguments)."""
        return self._stack[dtype]

    def linear_cols(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """linear() for float32 or bfloat16 decode batches of up to COLS_MAX_ROWS rows: the
        input rows lie across the vector lanes (linear_cols.c), so no lane sums and one weight
        read. bfloat16 needs an AVX512_BF16 build (isa "avx512bf16")."""
        out, failed = _run_linear(self._linear_cols[x.dtype], x, weight, bias)
        if failed:
            rows, isa = x.shape[0], self.isa
            raise ValueError(f"linear_cols ({isa}) takes 1 to {COLS_MAX_ROWS} rows, got {rows}")
        return out


def _run_linear(
    function: Callable[..., int | None],
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
) -> tuple[torch.Tensor, int]:
    """Call a compiled linear (x [M, K], weight [N, K], bias [N] or None) into a new [M, N]
    output; the output and what the function returned."""
    rows, n = x.shape[0], weight.shape[0]
    out = x.new_empty(rows, n)
    bias_pointer = None if bias is None else bias.data_ptr()
    threads = _threads()
    returned = function(
        x.data_ptr(),
        weight.data_ptr(),
        bias_pointer,
        out.data_ptr(),
        rows,
        n,
        weight.shape[1],
        threads,
    )
    return out, int(returned or 0)


def cpu_kernels(target: BuildTarget | None = None) -> CpuKernels | None:
    """The kernels for this machine (built for `target`, else for the best target the host
    runs that the compiler builds), or None where they are off or cannot be built."""
    library = kernel_library(target)
    return None if library is None else _wrap(library)


@functools.cache  # one wrapper per library, which load_library itself builds once
def _wrap(library: ctypes.CDLL) -> CpuKernels:
    return CpuKernels(library)


def _bind(function: ctypes._CFuncPtr, argtypes: list[type]) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    function.argtypes = argtypes
    function.restype = None
    return function


def _threads() -> int:
    return torch.get_num_threads()
