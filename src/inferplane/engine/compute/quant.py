"""Int8 weight-only quantization: symmetric, one scale per output channel.

Each linear weight W [out, in] becomes q = round(W / s) in int8 with s = max|W[row]| / 127,
so memory halves against bfloat16 (a quarter against float32). Activations, embeddings,
norms and the LM head stay in the model's dtype. The product runs through torch's fused
int8-weight kernel (`_weight_int8pack_mm`), which dequantizes inside the kernel instead of
materialising a float copy of the weight; where that kernel is missing it falls back to a
dequantized matmul.
"""

import torch
import torch.nn.functional as F
from torch import nn

INT8_MAX = 127


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
    """y = x (q * s)^T + b with q int8 [out, in] and s [out] in the activations' dtype."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight: torch.Tensor
        self.scale: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "Int8Linear":
        q, scale = quantize_per_channel(weight)
        return cls(q, scale.to(weight.dtype), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = _int8_matmul(flat, self.weight, self.scale)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


def _int8_matmul(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu" and x.is_contiguous():
        return torch._weight_int8pack_mm(x, q, scale)
    return F.linear(x, q.to(x.dtype)) * scale


def weight_bytes(module: nn.Module) -> int:
    """Bytes held by a module's buffers, counting a shared tensor once (packed ones too)."""
    seen: dict[int, int] = {}
    for buffer in module.buffers():
        seen[id(buffer)] = buffer.numel() * buffer.element_size()
    return sum(seen.values())
