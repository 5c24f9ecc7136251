"""Weight formats the planner knows: bytes per parameter, KV cache element size, compute path.

    fp32        4 bytes per weight, fp32 KV cache, 16-bit tensor-core math is *not* assumed:
                fp32 runs at the GPU's TF32 rate, taken here as half its 16-bit rate.
    bf16/fp16   2 bytes per weight, 16-bit KV cache, 16-bit tensor cores.
    fp8         1 byte per weight (W8A8, per-tensor scales), fp8 KV cache, fp8 tensor cores where
                the GPU has them; elsewhere weight-only fp8 with 16-bit math.
    int8        1 byte per weight (W8A8, per-channel scales: negligible), 16-bit KV cache,
                int8 tensor cores.
    int4        0.5 byte per weight plus one fp16 scale and one packed int4 zero point per group
                of 128 weights (GPTQ / AWQ style): 0.5 + 2.5 / 128 bytes; 16-bit KV cache and
                16-bit math after dequantization.
    q4_0        0.5 byte per weight plus one fp16 scale per block of 32 (GGUF's Q4_0, what
                inferplane's `--quantization q4_0` holds): 0.5 + 2 / 32 bytes; as int4 otherwise.

Quantization applies to the linear layers only: embeddings, the lm_head, norm scales and biases
stay at 16 bits (32 for fp32), as the usual GPTQ / AWQ / fp8 checkpoints keep them.
"""

from dataclasses import dataclass
from typing import Literal

ComputePath = Literal["tf32", "bf16", "fp8", "int8"]
_INT4_GROUP = 128
_Q4_0_BLOCK = 32


@dataclass(frozen=True)
class Precision:
    name: str
    linear_bytes: float  # bytes per quantized linear-layer weight, scales included
    other_bytes: int  # bytes per embedding / norm / bias parameter
    kv_bytes: int  # bytes per KV cache element
    compute: ComputePath
    activation_bytes: int = 2

    def describe(self) -> str:
        return (
            f"weights: {self.name} = {self.linear_bytes:g} bytes per linear-layer weight, "
            f"{self.other_bytes} per embedding/norm/bias parameter; KV cache "
            f"{self.kv_bytes} bytes per element; {self.compute} tensor-core math"
        )


def precisions() -> dict[str, Precision]:
    """The weight formats, by the name the CLI takes (a fresh dict)."""
    table = [
        Precision("fp32", 4.0, 4, 4, "tf32", activation_bytes=4),
        Precision("bf16", 2.0, 2, 2, "bf16"),
        Precision("fp16", 2.0, 2, 2, "bf16"),
        Precision("fp8", 1.0, 2, 1, "fp8"),
        Precision("int8", 1.0, 2, 2, "int8"),
        Precision("int4", 0.5 + 2.5 / _INT4_GROUP, 2, 2, "bf16"),
        Precision("q4_0", 0.5 + 2 / _Q4_0_BLOCK, 2, 2, "bf16"),
    ]
    return {precision.name: precision for precision in table}


def get_precision(name: str) -> Precision:
    table = precisions()
    key = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}.get(
        name.lower(), name.lower()
    )
    if key not in table:
        raise ValueError(f"unknown dtype {name!r}: use one of {', '.join(table)}")
    return table[key]


def lighter_precisions(name: str) -> list[str]:
    """Formats that store weights in fewer bytes than `name`, heaviest first."""
    # int8 stores as many bytes as fp8, so it is never the lighter step after fp8.
    order = ["fp32", "bf16", "fp8", "int4"]
    start = order.index({"fp16": "bf16", "int8": "fp8", "q4_0": "int4"}.get(name, name))
    return order[start + 1 :]


def served_format(dtype: str, quantization: str) -> str:
    """The planner's name for what a fleet model's weights are served as: its quantization
    (int8, q4_0) where it has one, else its dtype (`auto` planned as bf16)."""
    if quantization in {"int8", "q4_0"}:
        return quantization
    return "bf16" if dtype == "auto" else dtype
