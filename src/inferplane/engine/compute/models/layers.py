"""Building blocks shared by the decoder models: linear, RMSNorm, rotary embedding.

Weights are registered as buffers, not parameters: the engine never trains, and buffers move
with `Module.to` all the same.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from inferplane.engine.compute.cpu_features import onednn_computes_bf16
from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.cpu_kernels.ops import COLS_MAX_ROWS
from inferplane.engine.compute.loader import RopeConfig
from inferplane.engine.compute.quant import tiled_linear


class Linear(nn.Module):
    """y = x W^T + b with W [out, in] in the model's dtype."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class PackedLinear(nn.Module):
    """A bfloat16 linear on CPU whose weight is reordered once into oneDNN's blocked layout.

    Small-batch products (decode) run about twice as fast as F.linear over the plain layout
    on the CPUs measured, with identical results; the packed weight replaces the plain one.
    oneDNN packs bfloat16 only on CPUs with AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT: elsewhere
    (an AVX2-only host) `supported` is false and the model keeps the plain Linear.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(weight, 1))
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self.weight, self.bias, "none", [], ""
        )
        return out

    @staticmethod
    def supported(device: torch.device, dtype: torch.dtype) -> bool:
        return device.type == "cpu" and dtype == torch.bfloat16 and onednn_computes_bf16()


class WidenedLinear(Linear):
    """A float16 linear on CPU for large inputs (prefill): the product in float32, the weight
    widened a tile of rows at a time (a float32 copy is never resident), the output rounded to
    float16 once. torch's float16 F.linear on a CPU without AVX512-FP16 is several times slower
    (SmolLM2-135M's four layer shapes at 512 rows, one Zen 4 thread: 242 against 50 ms)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        weight, bias = self.weight, None if self.bias is None else self.bias.float()
        out = tiled_linear(flat, weight.shape, lambda a, b: weight[a:b].float(), bias)
        return out.to(x.dtype).reshape(*x.shape[:-1], out.shape[-1])


class StreamLinear(nn.Module):
    """A bfloat16, float16 or float32 linear on CPU for decode: inputs of a few rows (one per
    sequence)
    go through the compiled weight-streaming kernel, which reads the plain weight once per
    step at close to the memory's rate (one Zen 4 thread: 18 GB/s in bfloat16, against 12 for
    oneDNN's packed layout; 24 GB/s in float32, against 16 for TransposedLinear). Larger
    inputs (prefill, big batches) go to oneDNN's packed weight where the host packs bfloat16,
    else to F.linear over the same plain weight (as fast as TransposedLinear from 8 rows on).
    With packing the weight is held twice, plain and packed: the price of the faster path at
    every batch size, which `pack=False` declines (the loader does where memory is short).
    float16 weights take WidenedLinear for larger inputs.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        kernels: CpuKernels,
        pack: bool = True,
    ) -> None:
        super().__init__()
        self.weight: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("bias", bias)
        self.kernels = kernels
        packs = pack and PackedLinear.supported(weight.device, weight.dtype)
        self.large = _large_linear(weight, bias, packs)
        self.cols_from, cols_to = COLS_ROWS.get((weight.dtype, kernels.isa), (NO_COLS, 0))
        self.stream_rows = min(STREAM_ROWS[weight.dtype, packs], self.cols_from - 1)
        self.max_rows = max(self.stream_rows, cols_to)  # what the compiled kernels take

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        if x.dim() == 2 and rows <= self.stream_rows:
            return self.kernels.linear(x.contiguous(), self.weight, self.bias)
        if x.dim() == 2 and rows <= self.max_rows:
            return self.kernels.linear_cols(x.contiguous(), self.weight, self.bias)
        out: torch.Tensor = self.large(x)
        return out

    @staticmethod
    def supported(device: torch.device, dtype: torch.dtype) -> bool:
        return device.type == "cpu" and (dtype, False) in STREAM_ROWS


def _large_linear(weight: torch.Tensor, bias: torch.Tensor | None, packs: bool) -> nn.Module:
    """StreamLinear's layer for inputs past its kernels' rows, over the same weight."""
    if packs:
        return PackedLinear(weight, bias)
    if weight.dtype == torch.float16:
        return WidenedLinear(weight, bias)
    return Linear(weight, bias)


# Up to how many input rows the streaming kernel beats the alternative, by (dtype, whether
# oneDNN packs), measured over SmolLM2-135M's products on one Zen 4 thread. bfloat16: oneDNN's
# packed weight wins from 4 rows on (ours 0.87x there, 1.12x at 3, 1.5x at 1); where it cannot
# pack (oneDNN held to AVX2) F.linear is the other side, and ours is 2.2x it even at 16 rows.
# float32: ours 1.5x TransposedLinear at 1 row, 2.1x at 4; level with F.linear at 8.
# float16 (the other side WidenedLinear, its four layer shapes, load about 3): ours 3.3x at 1
# row, 1.9-2.2x at 8, 1.9x at 12; at 16 level (2.7 against 2.3 ms in one run, 7.0 against
# 8.7 in another); WidenedLinear ahead from 32 (5.4 against 3.6 ms).
STREAM_ROWS = {
    (torch.bfloat16, True): 3,
    (torch.bfloat16, False): 16,
    (torch.float32, False): 4,
    (torch.float16, False): 16,
}

# From how many input rows to how many the column kernels (linear_cols.c: the rows across the
# vector lanes) take over from the streaming kernel, by (dtype, the kernels' ISA), where they
# were measured faster than the alternative; SmolLM2-135M's 121 products on one Zen 4 thread.
# float32, AVX-512 builds: 58-67 ms at 6 to 16 rows against F.linear's 80-104 (best of 5); at
# 4 rows and fewer the streaming kernel leads; built for AVX2 it lost to F.linear at 16 rows
# (MKL held to AVX2: 122 against 103 ms). bfloat16, AVX512_BF16 builds (interleaved, medians
# of 9, load 1.1-1.4): 14.8 ms at 3 rows against the streaming kernel's 18.8-19.5; against
# oneDNN's packed weight 1.27x at 3 rows, 1.33x at 4, 1.41x at 8, 1.23x at 12 and 1.21x at 16
# (26.5 against 31.9 ms); so a decode step of up to 16 sequences also runs in the compiled
# layer stack (models/decode_stack.py).
COLS_ROWS = {
    (torch.float32, "avx512bf16"): (STREAM_ROWS[torch.float32, False] + 1, COLS_MAX_ROWS),
    (torch.float32, "avx512"): (STREAM_ROWS[torch.float32, False] + 1, COLS_MAX_ROWS),
    (torch.bfloat16, "avx512bf16"): (3, COLS_MAX_ROWS),
}
NO_COLS = 1 << 30  # cols_from where no column kernel applies


class TransposedLinear(nn.Module):
    """A float32 linear on CPU with the weight stored as [in, out]: x @ W^T then reads the
    weight in the order the BLAS kernel wants, ~1.6x faster for decode than F.linear."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight_t: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight_t", weight.t().contiguous())
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(x, self.weight_t)
        return out if self.bias is None else out + self.bias

    @staticmethod
    def supported(device: torch.device, dtype: torch.dtype) -> bool:
        return device.type == "cpu" and dtype == torch.float32


class RMSNorm(nn.Module):
    """Normalise in float32, scale in the model's dtype, as the reference implementation does.

    Written out rather than F.rms_norm, which on CPU runs as a longer chain of casts. With
    compiled kernels (bfloat16 on CPU) each norm is one call, rounded the same way.
    """

    def __init__(self, weight: torch.Tensor, eps: float, kernels: CpuKernels | None = None):
        super().__init__()
        self.weight: torch.Tensor
        self.register_buffer("weight", weight)
        self.eps = eps
        self.kernels = kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernels is not None:
            return self.kernels.rms_norm(x, self.weight, self.eps)
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)

    def add_forward(
        self, x: torch.Tensor, residual: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(norm(residual + x), residual + x): the residual add fused into the norm."""
        if self.kernels is not None:
            return self.kernels.add_rms_norm(x, residual, self.weight, self.eps)
        residual = residual + x
        return self(residual), residual


def inverse_frequencies(rope: RopeConfig, head_dim: int) -> torch.Tensor:
    """Per-pair rotation frequencies, with linear or llama3 scaling applied."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    inv_freq = 1.0 / (rope.theta**exponents)
    if rope.kind == "linear":
        return inv_freq / rope.factor
    if rope.kind == "llama3":
        return _llama3_scaling(inv_freq, rope)
    return inv_freq


def _llama3_scaling(inv_freq: torch.Tensor, rope: RopeConfig) -> torch.Tensor:
    """Long wavelengths slow down by `factor`, short ones stay, the band between blends."""
    old_len = rope.original_max_position_embeddings
    low_wavelen = old_len / rope.low_freq_factor
    high_wavelen = old_len / rope.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / rope.factor, inv_freq)
    smooth = (old_len / wavelen - rope.low_freq_factor) / (
        rope.high_freq_factor - rope.low_freq_factor
    )
    blended = (1 - smooth) * scaled / rope.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, blended, scaled)


class Rotary(nn.Module):
    """Tables of cos and signed sin per position, so rotation is x*cos + roll(x)*sin.

    roll(x, half) swaps the two halves; with sin's first half negated this equals the
    reference's rotate_half(x) * sin in three ops instead of six.
    """

    def __init__(
        self,
        rope: RopeConfig,
        head_dim: int,
        max_len: int,
        dtype: torch.dtype,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        freqs = torch.outer(
            torch.arange(max_len, dtype=torch.float32), inverse_frequencies(rope, head_dim)
        )
        half_sin = freqs.sin()
        self.cos: torch.Tensor
        self.sin: torch.Tensor
        cos = torch.cat((freqs.cos(), freqs.cos()), -1)
        self.register_buffer("cos", cos.to(device=device, dtype=dtype))
        self.register_buffer("sin", torch.cat((-half_sin, half_sin), -1).to(device, dtype))
        self.half_dim = head_dim // 2

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for each row, shaped [T, 1, head_dim] to broadcast over heads."""
        return self.cos[positions][:, None, :], self.sin[positions][:, None, :]

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(x * cos, torch.roll(x, self.half_dim, -1), sin)
