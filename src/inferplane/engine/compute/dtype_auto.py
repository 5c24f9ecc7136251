"""What `--dtype auto` means: the dtype a model runs in when its owner did not choose one.

On an accelerator, the checkpoint's own dtype. On a CPU, the dtype that served a request
fastest (time to first token on a 512-token prompt plus batch-1 decode) on hosts with the same
instruction sets, whatever the checkpoint stores: the weights are cast once at load
(bench/bench_dtype_auto.py; the numbers are in bench/README.md).

- native bfloat16 dot products (AVX512_BF16, AMX) and oneDNN's bfloat16 packing: bfloat16
  (packed oneDNN linears and the compiled bfloat16 kernels), faster than float32 in prefill
  and in decode.
- any other x86 host: float32. There bfloat16 and float16 weights decode one sequence faster
  (half the bytes a token) but prefill 2-4x slower, which costs more than decode saves unless
  a request's output is a large share of its prompt.
- off x86 nothing was measured: the checkpoint's dtype, float16 as bfloat16 (torch's CPU
  float16 kernels prefilled slowest of the three wherever they were timed).
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
