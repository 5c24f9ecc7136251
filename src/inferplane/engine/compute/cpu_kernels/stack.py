"""The ctypes face of decode_stack.h: a decode step's decoder layers as one compiled call.

The per-layer arguments (weight pointers, shapes) are packed once, when the model is built;
a step then fills one small structure (its rows, tables and cache) and makes one call where
the layers would make about 8 kernel calls and a dozen torch ops each.
"""

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass

import torch

_P = ctypes.c_void_p
_I = ctypes.c_int64
_F = ctypes.c_float


class LinearArgs(ctypes.Structure):
    _fields_ = (
        *(("weight", _P), ("scale", _P), ("bias", _P), ("n", _I), ("k", _I)),
        *(("block_scale", _P), ("block_min", _P)),
    )


class LayerArgs(ctypes.Structure):
    _fields_ = (
        ("input_norm", _P),
        ("post_norm", _P),
        ("qkv", LinearArgs),
        ("o", LinearArgs),
        ("gate_up", LinearArgs),
        ("down", LinearArgs),
    )


class StepArgs(ctypes.Structure):
    _fields_ = (
        *((name, _I) for name in ("rows", "hidden", "heads", "kv_heads", "dim", "inter")),
        ("max_len", _I),
        ("cache_slots", _I),
        ("eps", _F),
        ("scale", _F),
        ("kv_cache", _P),
        ("cos", _P),
        ("sin", _P),
        ("slot_mapping", _P),
        ("slots", _P),
        ("lengths", _P),
        ("work", _P),
        ("scratch", _P),
        ("threads", ctypes.c_int),
        ("cols_from", _I),
    )


@dataclass(frozen=True)
class StackLinear:
    """One product of a layer: weight [n, k] in the model's dtype, or int8 with a float32
    scale per row, or 4-bit codes [n, k / 2] with `blocks` (float16 block scales, and mins
    or None; quant4.py) (these two in float32 models only); bias [n] or None. The tensors
    stay contiguous."""

    weight: torch.Tensor
    scale: torch.Tensor | None
    bias: torch.Tensor | None
    blocks: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def args(self) -> LinearArgs:
        n, k = self.weight.shape
        scale = None if self.scale is None else self.scale.data_ptr()
        bias = None if self.bias is None else self.bias.data_ptr()
        if self.blocks is None:
            return LinearArgs(self.weight.data_ptr(), scale, bias, n, k)
        block_scale, block_min = self.blocks
        low = None if block_min is None else block_min.data_ptr()
        return LinearArgs(self.weight.data_ptr(), None, bias, n, 2 * k, block_scale.data_ptr(), low)


@dataclass(frozen=True)
class StackLayer:
    """What the compiled stack reads of one decoder layer (its norms' weights and products)."""

    input_norm: torch.Tensor
    post_norm: torch.Tensor
    qkv: StackLinear
    o: StackLinear
    gate_up: StackLinear
    down: StackLinear

    def args(self) -> LayerArgs:
        linears = (self.qkv.args(), self.o.args(), self.gate_up.args(), self.down.args())
        return LayerArgs(self.input_norm.data_ptr(), self.post_norm.data_ptr(), *linears)


@dataclass(frozen=True)
class StackShape:
    hidden: int
    heads: int
    kv_heads: int
    dim: int
    inter: int
    eps: float

    def work_elements(self, rows: int) -> int:
        """decode_stack.h's scratch a step: x, qkv, q, attention, o, gate_up, SwiGLU."""
        width = (self.heads + 2 * self.kv_heads) * self.dim
        return rows * (2 * self.hidden + width + 2 * self.heads * self.dim + 3 * self.inter)


class CompiledStack:
    """Runs decode_stack.h over the layers given (their tensors must outlive it). The dense
    products of a step of `cols_from` rows or more take the column kernel (linear_cols.c)."""

    def __init__(
        self,
        function: "ctypes._CFuncPtr",  # type: ignore[name-defined]
        layers: Sequence[StackLayer],
        shape: StackShape,
        cols_from: int,
    ) -> None:
        self._function = function
        self._layers = (LayerArgs * len(layers))(*(layer.args() for layer in layers))
        self._count = len(layers)
        self.shape = shape
        self.cols_from = cols_from

    def run(  # noqa: PLR0917 (the step's operands)
        self,
        h: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        slot_mapping: torch.Tensor,
        slots: torch.Tensor,
        lengths: torch.Tensor,
        kv_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h [rows, hidden] (the embedding, contiguous) through every layer: (the last
        layer's MLP output, the residual stream before it), as the layers return them.
        kv_cache [layers, 2, cache_slots, kv_heads, dim] contiguous; slots [rows, max_len]."""
        shape, rows, threads = self.shape, h.shape[0], torch.get_num_threads()
        max_len = slots.shape[1]
        residual = torch.empty_like(h)
        work = h.new_empty(shape.work_elements(rows))
        scratch = torch.empty(threads * shape.heads * (2 * shape.dim + max_len))
        step = StepArgs(
            rows,
            shape.hidden,
            shape.heads,
            shape.kv_heads,
            shape.dim,
            shape.inter,
            max_len,
            kv_cache.shape[2],
            shape.eps,
            shape.dim**-0.5,
            kv_cache.data_ptr(),
            cos.data_ptr(),
            sin.data_ptr(),
            slot_mapping.data_ptr(),
            slots.data_ptr(),
            lengths.data_ptr(),
            work.data_ptr(),
            scratch.data_ptr(),
            threads,
            self.cols_from,
        )
        layers, pointer = self._layers, ctypes.byref(step)
        if self._function(layers, self._count, pointer, h.data_ptr(), residual.data_ptr()):
            raise MemoryError(f"decode stack: no memory for a linear's scratch ({rows} rows)")
        return h, residual
