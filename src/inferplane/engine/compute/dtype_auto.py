"""What `--dtype auto` means: the dtype a model runs in when its owner did not choose one.

On an accelerator, the checkpoint's own dtype. On a CPU, the dtype whose batch-1 decode was
measured fastest on hosts with the same instruction sets (bench/bench_dtype_auto.py; the
numbers are in bench/README.md), whatever the checkpoint stores: the weights are cast once
at load, and batch-1 decode is bound by the bytes each token reads and by the kernels the
host has for them.

- native bfloat16 dot products (AVX512_BF16, AMX) and oneDNN's bfloat16 packing: bfloat16
  (the packed oneDNN linears and the compiled bfloat16 kernels);
- any other x86 host: float32. Without oneDNN's packing (an AVX2 host) bfloat16 and float16
  linears take torch's plain path, slower per token than float32 despite half the bytes.
- off x86 nothing was measured: the checkpoint's dtype, float16 as bfloat16 (torch's CPU
  float16 kernels are the slowest of the three wherever they were timed).
"""

import torch

from inferplane.engine.compute.cpu_features import CpuFeatures


def auto_dtype(features: CpuFeatures, device: torch.device, checkpoint: torch.dtype) -> torch.dtype:
    """`auto` for a model whose checkpoint stores `checkpoint`, on `device` of this host."""
    if device.type != "cpu":
        return checkpoint
    return auto_cpu_dtype(features, checkpoint)


def auto_cpu_dtype(features: CpuFeatures, checkpoint: torch.dtype) -> torch.dtype:
    """The CPU's choice: a pure function of the host's capability set (and, off x86, of
    the checkpoint)."""
    if features.native_bf16 and features.onednn_bf16:
        return torch.bfloat16
    if features.x86:
        return torch.float32
    return torch.bfloat16 if checkpoint == torch.float16 else checkpoint
