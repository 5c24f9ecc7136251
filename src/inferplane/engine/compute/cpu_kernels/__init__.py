"""Compiled CPU kernels for bfloat16 decode, with torch as the fallback (see build.py)."""

from inferplane.engine.compute.cpu_kernels.ops import CpuKernels, cpu_kernels

__all__ = ["CpuKernels", "cpu_kernels"]
