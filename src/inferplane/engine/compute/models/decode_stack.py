"""Which models, and which steps, run their decoder layers as one compiled call.

A decode-only step of a few sequences on CPU runs every layer's ops in C (cpu_kernels/
decode_stack.h) where each layer's products all stream through the compiled kernels anyway:
dense StreamLinear layers in the model's dtype (the streaming kernel for few rows, the column
kernel from its StreamLinear's cols_from on, 16 rows at most), or int8 layers on the compiled
int8 path in float32. Measured on SmolLM2-135M, one thread, a decode step spent about a fifth
of its time in Python and ctypes between some 240 kernel calls and 300 torch ops; the results
are the layer-by-layer path's, but for SwiGLU's exp (a vectorized one where the build has
AVX-512).
Models with a norm on each query and key head (Qwen3), and steps with prefill rows or more
rows than every product streams, take the layers one by one.
"""

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from inferplane.engine.compute.attention import AttentionMetadata
from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.cpu_kernels.stack import (
    CompiledStack,
    StackLayer,
    StackLinear,
    StackShape,
)
from inferplane.engine.compute.models.layers import NO_COLS, RMSNorm, StreamLinear
from inferplane.engine.compute.quant import INT8_STREAM_ROWS, Int8Linear
from inferplane.engine.compute.quant4 import Q4_STREAM_ROWS, Q4Linear


@dataclass(frozen=True)
class LayerParts:
    """What a decoder layer is made of, as the stack needs it."""

    input_norm: RMSNorm
    post_norm: RMSNorm
    products: tuple[nn.Module, nn.Module, nn.Module, nn.Module]  # qkv, o, gate_up, down
    head_norms: bool  # a norm on each query and key head (not in the compiled stack)


class DecodeStack:
    """The compiled stack over a model's layers, for the steps it takes. It holds the layers'
    weight pointers: a deep copy of the model rebuilds it over the copy's weights."""

    def __init__(self, stack: CompiledStack, max_rows: int, built_from: tuple[object, ...]) -> None:
        self._stack = stack
        self.max_rows = max_rows
        self._built_from = built_from  # build's arguments, for __deepcopy__

    def rebuilt(self) -> "DecodeStack | None":
        """The stack over the same layers' weights as they are now (after they moved)."""
        return self._build_over(self._built_from[0])

    def __deepcopy__(self, memo: dict[int, object]) -> "DecodeStack | None":
        # the copy's own layers, through the memo
        return self._build_over(copy.deepcopy(self._built_from[0], memo))

    def _build_over(self, parts: object) -> "DecodeStack | None":
        _, kernels, dtype, heads = self._built_from
        return DecodeStack.build(parts, kernels, dtype, heads)  # type: ignore[arg-type]

    @classmethod
    def build(
        cls,
        parts: Sequence[LayerParts],
        kernels: CpuKernels | None,
        dtype: torch.dtype,
        heads: tuple[int, int, int],
    ) -> "DecodeStack | None":
        """The stack where every layer qualifies (see the module's doc), else None.
        heads: (query heads, KV heads, head dim)."""
        if kernels is None or not parts or any(p.head_norms for p in parts):
            return None
        layers, max_rows = [], INT8_STREAM_ROWS
        for part in parts:
            linears = [_stack_linear(module, dtype) for module in part.products]
            if any(linear is None for linear in linears):
                return None
            qkv, o, gate_up, down = (linear for linear, _ in filter(None, linears))
            max_rows = min(max_rows, *(rows for _, rows in filter(None, linears)))
            norms = (part.input_norm.weight, part.post_norm.weight)
            layers.append(StackLayer(*norms, qkv, o, gate_up, down))
        first = parts[0]
        hidden, inter = first.input_norm.weight.shape[0], layers[0].gate_up.weight.shape[0] // 2
        shape = StackShape(hidden, *heads, inter, first.input_norm.eps)
        compiled = CompiledStack(kernels.decode_stack(dtype), layers, shape, _cols_from(parts))
        return cls(compiled, max_rows, (tuple(parts), kernels, dtype, heads))

    def takes(self, rows: int, meta: AttentionMetadata) -> bool:
        """Whether the step is decode rows only, few enough for every product's kernel."""
        return meta.decode is not None and meta.decode.all_rows and rows <= self.max_rows

    def __call__(
        self,
        h: torch.Tensor,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        meta: AttentionMetadata,
        kv_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the last layer's MLP output, the residual stream before it) for embedding h."""
        decode = meta.decode
        assert decode is not None
        cos, sin = cos_sin
        return self._stack.run(
            h, cos, sin, meta.slot_mapping, decode.context_slots, decode.lengths, kv_cache
        )


def _cols_from(parts: Sequence[LayerParts]) -> int:
    """From how many rows the dense products take the column kernel (the same for every
    StreamLinear of a model: one dtype, one build)."""
    dense = [m for part in parts for m in part.products if isinstance(m, StreamLinear)]
    return min((m.cols_from for m in dense), default=NO_COLS)


def _stack_linear(module: nn.Module, dtype: torch.dtype) -> tuple[StackLinear, int] | None:
    """A product as the stack runs it, and up to how many rows its kernel takes; None where
    the layer-by-layer path runs it another way."""
    if isinstance(module, StreamLinear) and module.weight.dtype == dtype:
        return StackLinear(module.weight, None, module.bias), module.max_rows
    if (
        isinstance(module, Int8Linear)
        and module.streams_dtype(dtype)
        and module.weight.is_contiguous()
    ):
        return StackLinear(module.weight, module.scale, module.bias), INT8_STREAM_ROWS
    if (
        isinstance(module, Q4Linear)
        and module.kernels is not None
        and dtype == torch.float32
        and (module.bias is None or module.bias.dtype == torch.float32)
    ):
        blocks = (module.scale, module.min)
        return StackLinear(module.weight, None, module.bias, blocks), Q4_STREAM_ROWS
    return None
