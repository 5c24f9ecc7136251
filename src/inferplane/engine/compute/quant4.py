"""4-bit weight-only quantization in GGUF's block formats, Q4_0 and Q4_1.

A weight [out, in] is held as blocks of 32 values along `in`: 4-bit codes (two a byte) and a
float16 scale per block (Q4_0: value = scale * (code - 8), 4.5 bits a weight), or a scale and a
float16 min (Q4_1: value = scale * code + min, 5 bits a weight). The blocks are the resident
copy: no float copy of the weight is kept.

Where they come from (see runner.load_model): `quantization: q4_0` quantizes a dense model's
projections with llama.cpp's reference rounding (`quantize_q4_0`: a Q4_0 GGUF file made from
the same float32 weights holds the same bits), and a GGUF file's Q4_0 and Q4_1 projections
keep their own blocks (sources/gguf_tensors.py). The LM head (a tied embedding included) goes
to the int8 path instead, as llama-quantize keeps the output / tied token embedding at a higher
type than the layers (Q6_K, or Q8_0 where a row is no multiple of 256 values).

On CPU the product takes, by input rows:
- decode (up to Q4_STREAM_ROWS rows): the compiled 4-bit streaming linear
  (cpu_kernels/linear_q4.c): each input row rounded to int8 per block of 32, integer dot
  products against the codes, the block scales applied per block;
- larger inputs (prefill): the weight dequantized a tile of rows at a time, then F.linear
  (quant.tiled_linear); float32 inputs in bfloat16 where oneDNN computes bfloat16 natively
  (AVX512_BF16 / AMX): SmolLM2-135M's 512-token prefill, one Zen 4 thread, interleaved: 1825
  -> 1293 ms (1.41x), the passage's perplexity 36.830 -> 36.831 (each value rounds to 8 bits
  of mantissa, far inside a 4-bit step). Elsewhere the tiles stay float32.
Without the kernels (an accelerator, or kernels off) the tiles are dequantized in torch.
"""

from collections.abc import Callable, Mapping

import torch
from torch import nn

from inferplane.engine.compute.cpu_features import onednn_computes_bf16
from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.cpu_kernels.ops_q4 import (
    Q4_BLOCK,
    Q4_MAX_ROWS,
    Q4Blocks,
    Q4Kernels,
    q4_kernels,
)
from inferplane.engine.compute.quant import Int8Linear, tiled_linear

Q4_STREAM_ROWS = Q4_MAX_ROWS


def quantize_q4_0(weight: torch.Tensor) -> Q4Blocks:
    """Q4_0 blocks of a weight [n, k] (k a multiple of 32), rounded as llama.cpp's
    quantize_row_q4_0_ref rounds: per block d = v / -8 for the value v of largest magnitude
    (the first such), codes min(15, trunc(x / d + 8.5)) in float32 arithmetic."""
    n, k = weight.shape
    if k % Q4_BLOCK:
        raise ValueError(f"Q4_0 needs a multiple of {Q4_BLOCK} input columns, got {k}")
    blocks = weight.to(torch.float32).reshape(n, k // Q4_BLOCK, Q4_BLOCK)
    at = blocks.abs().argmax(dim=-1, keepdim=True)  # the first largest, as the reference
    d = torch.gather(blocks, -1, at) / -8.0
    inverse = torch.where(d == 0, torch.zeros_like(d), 1.0 / d)
    codes = torch.trunc(blocks * inverse + 8.5).clamp_(0, 15).to(torch.uint8)
    half = Q4_BLOCK // 2
    packed = codes[..., :half] | (codes[..., half:] << 4)
    return Q4Blocks(packed.reshape(n, k // 2).contiguous(), d[..., 0].to(torch.float16), None)


def dequantize_q4(w: Q4Blocks, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The blocks' values [n, k] in torch (the kernels' dequantize does the same in C)."""
    n, k = w.shape
    codes = w.codes.reshape(n, k // Q4_BLOCK, Q4_BLOCK // 2)
    values = torch.cat((codes & 15, codes >> 4), dim=-1).to(torch.float32)
    scale = w.scale.to(torch.float32)[..., None]
    if w.min is None:
        out = scale * (values - 8)
    else:
        out = scale * values + w.min.to(torch.float32)[..., None]
    return out.reshape(n, k).to(dtype)


class Q4Linear(nn.Module):
    """y = x W^T + b with W as 4-bit blocks (Q4_0 or Q4_1); `kernels` (on CPU) streams decode
    inputs through the compiled 4-bit linear."""

    def __init__(
        self, w: Q4Blocks, bias: torch.Tensor | None, *, kernels: Q4Kernels | None = None
    ) -> None:
        super().__init__()
        self.kernels = kernels
        self.weight: torch.Tensor  # the codes
        self.scale: torch.Tensor
        self.min: torch.Tensor | None
        self.bias: torch.Tensor | None
        self.register_buffer("weight", w.codes.contiguous())
        self.register_buffer("scale", w.scale.contiguous())
        self.register_buffer("min", None if w.min is None else w.min.contiguous())
        self.register_buffer("bias", bias)
        # float32 prefill in bfloat16 where oneDNN computes it natively (the module's doc)
        self.prefill_bf16 = kernels is not None and onednn_computes_bf16()

    @classmethod
    def from_float(
        cls, weight: torch.Tensor, bias: torch.Tensor | None = None, *, kernels: Q4Kernels | None
    ) -> "Q4Linear":
        return cls(quantize_q4_0(weight), bias, kernels=kernels)

    @property
    def blocks(self) -> Q4Blocks:
        return Q4Blocks(self.weight, self.scale, self.min)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = self._product(flat)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _product(self, x: torch.Tensor) -> torch.Tensor:
        kernels, bias = self.kernels, self.bias
        if kernels is not None and x.device.type == "cpu" and x.shape[0] <= Q4_STREAM_ROWS:
            wide = x.to(torch.float32).contiguous()
            wide_bias = None if bias is None else bias.to(torch.float32)
            return kernels.linear(wide, self.blocks, wide_bias).to(x.dtype)
        if self.prefill_bf16 and x.dtype == torch.float32 and x.device.type == "cpu":
            out = self._tiled(x.to(torch.bfloat16), None).float()
            return out if bias is None else out + bias.float()
        return self._tiled(x, None if bias is None else bias.to(x.dtype))

    def _tiled(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x W^T + bias, W dequantized to x's dtype a tile of rows at a time."""
        blocks = self.blocks
        return tiled_linear(x, blocks.shape, lambda a, b: self._tile(blocks.rows(a, b), x), bias)

    def _tile(self, w: Q4Blocks, x: torch.Tensor) -> torch.Tensor:
        if self.kernels is not None and x.device.type == "cpu":
            return self.kernels.dequantize(w).to(x.dtype)
        return dequantize_q4(w, x.dtype)


def q4_factory(
    kernels: CpuKernels | None,
) -> Callable[[torch.Tensor, torch.Tensor | None], nn.Module]:
    """What `quantization: q4_0` builds a dense projection into: Q4_0 blocks, quantized at
    load; a width of partial blocks (no multiple of 32) goes to the int8 path instead. With
    `kernels` (CPU) the decode product runs compiled."""
    q4 = q4_kernels() if kernels is not None else None

    def make(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        if weight.shape[1] % Q4_BLOCK:
            return Int8Linear.from_float(weight, bias, kernels=kernels)
        return Q4Linear.from_float(weight, bias, kernels=q4)

    return make


def stored_q4_layer(
    weights: Mapping[str, torch.Tensor],
    names: list[str],
    bias: torch.Tensor | None,
    kernels: CpuKernels | None,
) -> Q4Linear:
    """One layer over projections stored as 4-bit blocks (`weight` codes, `weight_scale`, and
    `weight_min` for Q4_1; sources/gguf_tensors.py), stacked by rows. A Q4_0 part beside Q4_1
    ones takes the min -8 * scale, its values unchanged."""
    codes = [weights[f"{name}.weight"] for name in names]
    if any(part.dtype != torch.uint8 for part in codes):
        raise ValueError(f"{', '.join(names)}: 4-bit and other weights cannot share one layer")
    scales = [weights[f"{name}.weight_scale"] for name in names]
    mins = [weights.get(f"{name}.weight_min") for name in names]
    low = None
    if any(part is not None for part in mins):
        filled = [
            part if part is not None else (scale.float() * -8).to(torch.float16)
            for part, scale in zip(mins, scales, strict=True)
        ]
        low = torch.cat(filled)
    blocks = Q4Blocks(torch.cat(codes), torch.cat(scales), low)
    return Q4Linear(blocks, bias, kernels=q4_kernels() if kernels is not None else None)
