"""Build targets the kernel tests run: on x86 the AVX-512, AVX2 and SSE2-only builds (x86-64
levels 4, 3 and 1), each skipped where this CPU cannot run it, so an AVX-512 machine also
tests what an AVX2 host runs; elsewhere the native build alone."""

import pytest

from inferplane.engine.compute.cpu_features import LEVEL_NAMES, OVERRIDE_ENV, host_features
from inferplane.engine.compute.cpu_kernels import CpuKernels, cpu_kernels
from inferplane.engine.compute.cpu_kernels.build import NATIVE, BuildTarget, x86_target

KERNEL_LEVELS = (4, 3, 1)  # the ISAs kernels.c is written to vectorize for


def _target_params() -> list[object]:
    host = host_features()
    if not host.x86:
        return [pytest.param(NATIVE, id=NATIVE.name)]
    params: list[object] = []
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
    host = host_features()
    if target.name in LEVEL_NAMES and LEVEL_NAMES[target.name] < host.x86_level:
        monkeypatch.setenv(OVERRIDE_ENV, target.name)
    else:
        monkeypatch.delenv(OVERRIDE_ENV, raising=False)
