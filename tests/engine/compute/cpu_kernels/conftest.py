"""Build targets the kernel tests run: on x86 the AVX512_BF16 (with AVX512_VNNI), AVX-512,
AVX2 and SSE2-only builds (x86-64-v4 with those two, then x86-64 levels 4, 3 and 1), each
skipped where this CPU cannot run it, so an AVX512_BF16 machine also tests what AVX-512 and
AVX2 hosts run; elsewhere the native build alone."""

import pytest

from inferplane.engine.compute.cpu_features import LEVEL_NAMES, OVERRIDE_ENV, host_features
from inferplane.engine.compute.cpu_kernels import CpuKernels, cpu_kernels
from inferplane.engine.compute.cpu_kernels.build import (
    BF16_TARGET_FLAGS,
    NATIVE,
    BuildTarget,
    host_target,
    x86_bf16_target,
    x86_target,
)

KERNEL_LEVELS = (4, 3, 1)  # the ISAs kernels.c is written to vectorize for


def _target_params() -> list[object]:
    host = host_features()
    if not host.x86:
        return [pytest.param(NATIVE, id=NATIVE.name)]
    bf16 = x86_bf16_target()
    cannot = f"this CPU lacks avx512_bf16 or avx512_vnni (x86-64 level {host.x86_level})"
    lacks_bf16 = host.x86_level < 4 or not host.has(*BF16_TARGET_FLAGS)
    params: list[object] = [
        pytest.param(bf16, id=bf16.name, marks=pytest.mark.skipif(lacks_bf16, reason=cannot))
    ]
    for level in KERNEL_LEVELS:
        target = x86_target(level)
        reason = f"this CPU runs x86-64 level {host.x86_level}, not {target.name}"
        skip = pytest.mark.skipif(level > host.x86_level, reason=reason)
        params.append(pytest.param(target, id=target.name, marks=skip))
    return params


@pytest.fixture(scope="module", params=_target_params())
def target(request: pytest.FixtureRequest) -> BuildTarget:
    built: BuildTarget = request.param
    return built


@pytest.fixture(scope="module")
def kernels(target: BuildTarget) -> CpuKernels:
    built = cpu_kernels(target)
    if built is None:
        pytest.skip("no C compiler on this machine")
    return built


@pytest.fixture
def host_at_target_level(target: BuildTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend (INFERPLANE_CPU_FEATURES) a host whose best target is `target`, so the engine
    itself picks that build, and makes every other choice such a host would make."""
    # a level's name keeps that level's flags only (x86-64-v4: no avx512_bf16)
    if target.name in LEVEL_NAMES and host_target(host_features()) != target:
        monkeypatch.setenv(OVERRIDE_ENV, target.name)
    else:
        monkeypatch.delenv(OVERRIDE_ENV, raising=False)
