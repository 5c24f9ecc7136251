"""Compiled CPU kernels for decode in bfloat16, float16 and float32 (and int8 weights), with
torch as the fallback (see build.py)."""

from inferplane.engine.compute.cpu_kernels.ops import CpuKernels, cpu_kernels

__all__ = ["CpuKernels", "cpu_kernels"]
