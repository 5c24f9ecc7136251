"""What `--dtype auto` means: the dtype a model runs in when its owner did not choose one.

On an accelerator, the checkpoint's own dtype. On a CPU, the dtype that served requests
fastest on hosts with the same instruction sets, whatever the checkpoint stores: the weights
are cast once at load (bench/bench_dtype_auto.py and the in-process batch-of-16 step; the
numbers are in bench/README.md).

- native bfloat16 dot products (AVX512_BF16, AMX) and oneDNN's bfloat16 packing: bfloat16
  (packed oneDNN linears and the compiled bfloat16 kernels), faster than float32 in prefill
  and in decode.
- AVX2 without AVX-512 (x86-64-v3), with the compiled kernels: float16 (F16C conversions,
  float32 arithmetic). One request (512 prompt tokens, 48 out) took 3.2 s against float32's
  3.7 (decode 1.6x, prefill 1.1x slower), and a decode step of 16 sequences 130 against 149 ms.
- AVX-512 without native bfloat16: float32. float16 served the single request faster (2.7
  against 3.0 s) but stepped 16 sequences at half float32's rate (125 against 66 ms: float32
  has the column kernel there), and batches are where the engine earns its throughput.
- any other x86 host (no AVX2, or no compiler for the kernels): float32. There float16 runs
  on torch's own CPU float16 ops, which prefill several times slower.
- off x86 nothing was measured: the checkpoint's dtype, float16 as bfloat16 (torch's CPU
  float16 kernels prefilled slowest of the three wherever they were timed).
"""

import torch

from inferplane.engine.compute.cpu_features import CpuFeatures
from inferplane.engine.compute.cpu_kernels import cpu_kernels


def auto_dtype(
    features: CpuFeatures,
    device: torch.device,
    checkpoint: torch.dtype,
    kernels: bool | None = None,
) -> torch.dtype:
    """`auto` for a model whose checkpoint stores `checkpoint`, on `device` of this host;
    `kernels`: whether the compiled CPU kernels load here (None: find out)."""
    if device.type != "cpu":
        return checkpoint
    loads = cpu_kernels() is not None if kernels is None else kernels
    return auto_cpu_dtype(features, checkpoint, loads)


def auto_cpu_dtype(
    features: CpuFeatures, checkpoint: torch.dtype, kernels: bool = True
) -> torch.dtype:
    """The CPU's choice: a pure function of the host's capability set, whether the compiled
    kernels load (and, off x86, the checkpoint)."""
    if features.native_bf16 and features.onednn_bf16:
        return torch.bfloat16
    if features.x86 and features.x86_level == 3 and kernels:
        return torch.float16
    if features.x86:
        return torch.float32
    return torch.bfloat16 if checkpoint == torch.float16 else checkpoint
