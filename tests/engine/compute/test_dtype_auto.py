"""`--dtype auto` per host kind: a pure function of the capability set (and the device)."""

import pytest
import torch

from inferplane.engine.compute.cpu_features import X86_LEVELS, CpuFeatures, parse_override
from inferplane.engine.compute.dtype_auto import auto_cpu_dtype, auto_dtype

CPU = torch.device("cpu")
CHECKPOINTS = (torch.float32, torch.bfloat16, torch.float16)


def _x86(override: str, capability: str) -> CpuFeatures:
    return CpuFeatures("x86_64", capability, parse_override(override))


def _levels(level: int) -> frozenset[str]:
    return frozenset().union(*X86_LEVELS[: level + 1])


HOSTS = {
    # Sapphire Rapids and later: AMX tiles as well as AVX512_BF16
    "amx": _x86("x86-64-v4,avx512_bf16,avx512_vnni,amx_bf16,amx_tile", "AVX512"),
    # Cooper Lake, Zen 4 / Zen 5: AVX512_BF16 without AMX
    "avx512_bf16": _x86("x86-64-v4,avx512_bf16,avx512_vnni", "AVX512"),
    # Skylake-SP to Ice Lake: AVX-512 core, bfloat16 only emulated
    "avx512": _x86("x86-64-v4,avx512_vnni", "AVX512"),
    # Zen 1-3, Haswell to Alder Lake: AVX2, no AVX-512
    "avx2": _x86("x86-64-v3,avx_vnni", "AVX2"),
    "sse": _x86("x86-64-v2", "DEFAULT"),
}


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
@pytest.mark.parametrize("host", ["amx", "avx512_bf16"])
def test_native_bfloat16_hosts_run_bfloat16(host: str, checkpoint: torch.dtype) -> None:
    assert auto_cpu_dtype(HOSTS[host], checkpoint) == torch.bfloat16


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_avx2_hosts_with_the_kernels_run_float16(checkpoint: torch.dtype) -> None:
    assert auto_cpu_dtype(HOSTS["avx2"], checkpoint) == torch.float16
    assert auto_cpu_dtype(HOSTS["avx2"], checkpoint, kernels=False) == torch.float32


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
@pytest.mark.parametrize("host", ["avx512", "sse"])
@pytest.mark.parametrize("kernels", [True, False])
def test_other_x86_hosts_run_float32(host: str, checkpoint: torch.dtype, kernels: bool) -> None:
    assert auto_cpu_dtype(HOSTS[host], checkpoint, kernels) == torch.float32


def test_bf16_flags_without_onednn_packing_are_not_enough() -> None:
    # avx512_bf16 listed without the AVX-512 core oneDNN packs with: no packed linears, so
    # what an AVX2 host runs
    odd = CpuFeatures("x86_64", "AVX2", _levels(3) | {"avx512_bf16"})
    assert auto_cpu_dtype(odd, torch.bfloat16) == torch.float16


@pytest.mark.parametrize(
    ("checkpoint", "expected"),
    [
        (torch.float32, torch.float32),
        (torch.bfloat16, torch.bfloat16),
        (torch.float16, torch.bfloat16),
    ],
)
def test_off_x86_the_checkpoint_dtype_float16_as_bfloat16(
    checkpoint: torch.dtype, expected: torch.dtype
) -> None:
    arm = CpuFeatures("aarch64", "DEFAULT", frozenset())
    assert auto_cpu_dtype(arm, checkpoint) == expected


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_an_accelerator_keeps_the_checkpoint_dtype(host: str, checkpoint: torch.dtype) -> None:
    assert auto_dtype(HOSTS[host], torch.device("cuda"), checkpoint) == checkpoint


def test_the_cpu_choice_is_the_same_through_auto_dtype() -> None:
    for features in HOSTS.values():
        for checkpoint in CHECKPOINTS:
            for kernels in (True, False):
                chosen = auto_dtype(features, CPU, checkpoint, kernels)
                assert chosen == auto_cpu_dtype(features, checkpoint, kernels)
