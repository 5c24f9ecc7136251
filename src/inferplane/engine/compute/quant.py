"""Int8 weight-only quantization: symmetric, one scale per output channel.

Each linear weight W [out, in] becomes q = round(W / s) in int8 with s = max|W[row]| / 127,
so memory halves against bfloat16 (a quarter against float32). The LM head is quantized the
same way (a tied head as its own int8 copy of the embedding); activations, the embedding
lookup and norms stay in the model's dtype. On CPU the product takes, by input rows
(each bound measured on SmolLM2-135M's four layer shapes, one thread; see INT8_* below):
- float32 decode (up to INT8_STREAM_ROWS rows): the compiled int8 streaming linear
  (cpu_kernels/linear_int8.c), which reads each int8 row once for all input rows;
- other small inputs: torch's fused int8-weight kernel (`_weight_int8pack_mm`), fast in
  bfloat16 but not in float32;
- larger inputs (prefill): the weight dequantized to the activations' dtype a tile of rows at
  a time, then F.linear (a tile, not the whole weight: a float copy of it is never resident);
  float32 inputs go in bfloat16 where oneDNN computes it natively (1.72x over SmolLM2's
  layers at 512 rows, perplexity +0.01 %; bench/README.md, bench_llamacpp), float32 out.
Elsewhere (an accelerator) the product is a dequantized matmul.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from inferplane.engine.compute.cpu_features import onednn_computes_bf16
from inferplane.engine.compute.cpu_kernels import CpuKernels

INT8_MAX = 127

# Up to how many input rows the compiled int8 kernel runs (float32 activations): over
# SmolLM2-135M's four layer shapes on one Zen 4 thread it took 0.16 ms at 1 row against 2.9
# for _weight_int8pack_mm, and 2.1 against 4.1 ms for the dequantized F.linear at 16 rows.
INT8_STREAM_ROWS = 16
# Up to how many rows _weight_int8pack_mm beats the dequantized F.linear, by activation dtype
# (the same shapes and thread): bfloat16 0.8 against 1.9 ms at 8 rows, 3.1 against 2.5 at 32;
# float32 2.9 against 8.2 ms at 1 row, and from 4 rows on 11.8 against about 4.
INT8_PACK_ROWS = {torch.bfloat16: 16, torch.float32: 2}
# The largest dequantized tile, in elements (8 MiB of float32): SmolLM2's largest layer is one
# tile, and a large model's layer never has a float copy of itself resident.
DEQUANT_TILE_ELEMENTS = 1 << 21


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 weight [out, in], float32 scale [out]) with weight ~= q * scale[:, None]."""
    # One float32 copy, then in-place: quantizing a 0.5B model stays within a few seconds.
    scale = weight.abs().amax(dim=1).float().clamp(min=1e-12) / INT8_MAX
    w = (
        weight.to(torch.float32, copy=True)
        .div_(scale[:, None])
        .round_()
        .clamp_(-INT8_MAX, INT8_MAX)
    )
    return w.to(torch.int8), scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (q.float() * scale[:, None]).to(dtype)


class Int8Linear(nn.Module):
    """y = x (q * s)^T + b with q int8 [out, in] and s [out] in the activations' dtype;
    `kernels` (on CPU) streams float32 decode inputs through the compiled int8 linear."""

    def __init__(
        self,
        q: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        kernels: CpuKernels | None = None,
    ) -> None:
        super().__init__()
        self.kernels = kernels
        self.weight: torch.Tensor
        self.scale: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)
        # float32 prefill in bfloat16 where oneDNN computes it natively (the module's doc)
        self.prefill_bf16 = kernels is not None and onednn_computes_bf16()

    @classmethod
    def from_float(
        cls,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        kernels: CpuKernels | None = None,
    ) -> "Int8Linear":
        q, scale = quantize_per_channel(weight)
        return cls(q, scale.to(weight.dtype), bias, kernels=kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        out = self._product(flat)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _product(self, x: torch.Tensor) -> torch.Tensor:
        q, scale, bias, rows = self.weight, self.scale, self.bias, x.shape[0]
        if x.device.type != "cpu":
            out = F.linear(x, q.to(x.dtype)) * scale
            return out if bias is None else out + bias
        if self._streams(x):
            assert self.kernels is not None
            return self.kernels.linear_int8(x, q, scale, bias)
        if rows <= INT8_PACK_ROWS.get(x.dtype, 0):
            out = torch._weight_int8pack_mm(x, q, scale)
            return out if bias is None else out + bias
        if self.prefill_bf16 and x.dtype == torch.float32:
            out = dequantized_linear(x.to(torch.bfloat16), q, scale, None).float()
            return out if bias is None else out + bias.float()
        return dequantized_linear(x, q, scale, bias)

    def _streams(self, x: torch.Tensor) -> bool:
        """Whether the compiled kernel takes x: few rows, in a dtype it streams."""
        return x.shape[0] <= INT8_STREAM_ROWS and self.streams_dtype(x.dtype)

    def streams_dtype(self, dtype: torch.dtype) -> bool:
        """Whether the compiled kernel takes inputs of `dtype`: float32 throughout."""
        return (
            self.kernels is not None
            and dtype == self.scale.dtype == torch.float32
            and (self.bias is None or self.bias.dtype == torch.float32)
        )


def dequantized_linear(
    x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """x (q * scale)^T + bias with the weight dequantized to x's dtype a tile of output rows
    at a time (DEQUANT_TILE_ELEMENTS at most)."""
    return tiled_linear(
        x, q.shape, lambda start, end: _dequantized(q[start:end], scale[start:end], x.dtype), bias
    )


def tiled_linear(
    x: torch.Tensor,
    shape: torch.Size,
    weight_rows: Callable[[int, int], torch.Tensor],
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """x W^T + bias for a weight W of `shape` [n, k] that `weight_rows(start, end)` makes a
    tile of rows at a time in x's dtype (at most DEQUANT_TILE_ELEMENTS elements), each tile's
    product written into its columns of the output."""
    n, k = shape
    tile = max(1, DEQUANT_TILE_ELEMENTS // k)
    if tile >= n:
        return F.linear(x, weight_rows(0, n), bias)
    out = x.new_empty(x.shape[0], n)
    for start in range(0, n, tile):
        end = min(start + tile, n)
        part = None if bias is None else bias[start:end]
        out[:, start:end] = F.linear(x, weight_rows(start, end), part)
    return out


def _dequantized(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """q * scale[:, None] in `dtype`: one pass where the scale is already in it."""
    w = torch.mul(q, scale[:, None])
    return w if w.dtype == dtype else w.to(dtype)


def weight_bytes(module: nn.Module) -> int:
    """Bytes held by a module's buffers, counting a shared tensor once (packed ones too)."""
    seen: dict[int, int] = {}
    for buffer in module.buffers():
        seen[id(buffer)] = buffer.numel() * buffer.element_size()
    return sum(seen.values())
