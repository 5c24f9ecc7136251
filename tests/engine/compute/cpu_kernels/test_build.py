"""Building the kernel library: for a target the host runs, into a cache directory,
atomically, with clear failures."""

import ctypes
import shutil
from pathlib import Path

import pytest

from inferplane.engine.compute.cpu_features import (
    OVERRIDE_ENV,
    X86_LEVELS,
    CpuFeatures,
    host_features,
)
from inferplane.engine.compute.cpu_kernels import build as build_module
from inferplane.engine.compute.cpu_kernels import cpu_kernels
from inferplane.engine.compute.cpu_kernels.build import (
    BF16_TARGET_FLAGS,
    DISABLE_ENV,
    NATIVE,
    BuildTarget,
    KernelBuildError,
    build,
    compiler,
    host_target,
    host_targets,
    library_path,
    load_library,
    x86_bf16_target,
    x86_target,
)


def _cc() -> str:
    cc = compiler()
    if cc is None:
        pytest.skip("no C compiler on this machine")
    return cc


def test_builds_a_loadable_library_under_the_cache(tmp_path: Path) -> None:
    cc = _cc()
    target = library_path(cc, tmp_path, host_target())
    assert target.parent == tmp_path / "kernels"
    build(cc, target, host_target())
    library = ctypes.CDLL(str(target))
    library.ip_isa.restype = ctypes.c_char_p
    assert library.ip_isa().decode() in {"avx512bf16", "avx512", "avx2", "portable"}
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind


def test_the_cache_key_names_the_compiler(tmp_path: Path) -> None:
    cc = _cc()
    assert library_path(cc, tmp_path, NATIVE) == library_path(cc, tmp_path, NATIVE)
    other = shutil.which("c99") or shutil.which("gcc")
    if other is None or Path(other).resolve() == Path(cc).resolve():
        pytest.skip("only one compiler here")
    assert library_path(other, tmp_path, NATIVE) != library_path(cc, tmp_path, NATIVE)


def test_the_cache_key_names_the_target(tmp_path: Path) -> None:
    cc = _cc()
    v3, v4 = library_path(cc, tmp_path, x86_target(3)), library_path(cc, tmp_path, x86_target(4))
    assert v3 != v4 and v3.name.startswith("cpu-x86-64-v3-")


def test_a_failing_compiler_raises_and_leaves_nothing(tmp_path: Path) -> None:
    failing = shutil.which("false")
    assert failing is not None
    target = tmp_path / "kernels" / "cpu-x.so"
    with pytest.raises(KernelBuildError, match="failed"):
        build(failing, target, NATIVE)
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("level", "name"), [(4, "x86-64-v4"), (3, "x86-64-v3"), (2, "x86-64-v2"), (1, "x86-64")]
)
def test_an_x86_host_builds_for_the_highest_level_it_completes(level: int, name: str) -> None:
    features = CpuFeatures("x86_64", "DEFAULT", frozenset().union(*X86_LEVELS[: level + 1]))
    target = host_target(features)
    assert target.name == name
    assert ("-mavx2" in target.flags) == (level >= 3)
    assert ("-mavx512f" in target.flags) == (level == 4)


def test_an_avx512_bf16_host_builds_the_bf16_target() -> None:
    flags = frozenset().union(*X86_LEVELS, BF16_TARGET_FLAGS)
    target = host_target(CpuFeatures("x86_64", "AVX512", flags))
    assert target == x86_bf16_target()
    assert "-mavx512bf16" in target.flags and "-mavx512f" in target.flags
    assert "-mavx512vnni" in target.flags
    without_avx512 = frozenset().union(*X86_LEVELS[:4], BF16_TARGET_FLAGS)
    assert host_target(CpuFeatures("x86_64", "AVX2", without_avx512)) == x86_target(3)
    without_vnni = frozenset().union(*X86_LEVELS, {"avx512_bf16"})
    assert host_target(CpuFeatures("x86_64", "AVX512", without_vnni)) == x86_target(4)


def test_a_compiler_without_avx512_bf16_falls_back_to_the_level_below(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = frozenset().union(*X86_LEVELS, BF16_TARGET_FLAGS)
    features = CpuFeatures("x86_64", "AVX512", flags)
    assert host_targets(features) == [x86_bf16_target(), x86_target(4)]
    avx2 = CpuFeatures("x86_64", "AVX2", frozenset().union(*X86_LEVELS[:4]))
    assert host_targets(avx2) == [x86_target(3)]
    if not host_features().has(*BF16_TARGET_FLAGS) or host_features().x86_level < 4:
        level = host_features().x86_level
        pytest.skip(f"this CPU lacks avx512_bf16 or avx512_vnni (x86-64 level {level})")

    def old_compiler(target: BuildTarget) -> ctypes.CDLL | None:
        return None if "-mavx512bf16" in target.flags else load_library(target)

    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(build_module, "load_library", old_compiler)
    kernels = cpu_kernels()
    if kernels is None:
        pytest.skip("no C compiler on this machine")
    assert kernels.isa == "avx512"


def test_other_machines_build_natively() -> None:
    assert host_target(CpuFeatures("aarch64", "DEFAULT", frozenset())) == NATIVE


def test_a_host_pretending_avx2_gets_the_avx2_build(monkeypatch: pytest.MonkeyPatch) -> None:
    if host_features().x86_level < 3:
        pytest.skip(f"this CPU runs x86-64 level {host_features().x86_level}, not x86-64-v3")
    monkeypatch.setenv(OVERRIDE_ENV, "x86-64-v3")
    assert host_target() == x86_target(3)
    kernels = cpu_kernels()
    if kernels is None:
        pytest.skip("no C compiler on this machine")
    assert kernels.isa == "avx2"


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_the_environment_turns_the_kernels_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(DISABLE_ENV, value)
    assert cpu_kernels() is None
