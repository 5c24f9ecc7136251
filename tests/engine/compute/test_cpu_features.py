"""The host's CPU features, and the override that pretends a host has fewer."""

from pathlib import Path

import pytest
import torch

from inferplane.engine.compute.cpu_features import (
    AVX512_CORE,
    KNOWN_FLAGS,
    OVERRIDE_ENV,
    X86_LEVELS,
    CpuFeatures,
    cpu_features,
    detect,
    host_features,
    parse_override,
)


def _x86(*flags: str, capability: str = "AVX512") -> CpuFeatures:
    return CpuFeatures("x86_64", capability, frozenset(flags))


def _level(level: int) -> frozenset[str]:
    return frozenset().union(*X86_LEVELS[: level + 1])


def test_the_host_reports_torchs_level_and_only_known_flags() -> None:
    host = host_features()
    assert host.capability == torch.backends.cpu.get_cpu_capability()
    assert host.flags <= KNOWN_FLAGS
    assert not host.overridden
    if host.capability == "AVX512":
        assert host.has(*AVX512_CORE)


def test_reads_the_flags_line_of_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma f16c avx_vnni\n\n")
    features = detect("x86_64", "AVX2", cpuinfo)
    assert features.flags == {"avx2", "fma", "f16c", "avx_vnni"}
    assert features.x86_level == 1  # the rest of level 2 and 3 is not listed


@pytest.mark.parametrize(("capability", "level"), [("AVX512", 4), ("AVX2", 3), ("DEFAULT", 1)])
def test_without_cpuinfo_torchs_level_stands_in(
    tmp_path: Path, capability: str, level: int
) -> None:
    features = detect("x86_64", capability, tmp_path / "missing")
    assert features.x86_level == level
    assert not features.native_bf16  # torch's level says nothing of it


def test_without_cpuinfo_other_machines_have_no_x86_flags(tmp_path: Path) -> None:
    assert detect("arm64", "DEFAULT", tmp_path / "missing").flags == frozenset()


def test_without_the_override_it_is_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    assert cpu_features() is host_features()


def test_the_override_only_takes_away(monkeypatch: pytest.MonkeyPatch) -> None:
    host = host_features()
    monkeypatch.setenv(OVERRIDE_ENV, "x86-64-v4, avx512_bf16, amx_tile")
    pretended = cpu_features()
    assert pretended.overridden
    assert pretended.flags <= host.flags
    assert pretended.flags == host.flags & (_level(4) | {"avx512_bf16", "amx_tile"})


def test_an_avx2_host_has_no_onednn_bf16_and_torchs_level_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = host_features()
    if not host.x86 or host.x86_level < 3:
        pytest.skip(f"needs an x86-64-v3 host to pretend one (this is {host.machine})")
    monkeypatch.setenv(OVERRIDE_ENV, "x86-64-v3")
    avx2 = cpu_features()
    assert avx2.x86_level == 3
    assert not avx2.onednn_bf16 and not avx2.native_bf16
    assert avx2.capability in {"AVX2", "DEFAULT"}
    assert avx2.capability == "AVX2" or host.capability == "DEFAULT"


def test_an_unknown_feature_name_fails_and_names_the_variable() -> None:
    with pytest.raises(ValueError, match=f"{OVERRIDE_ENV}.*'avx3'"):
        parse_override("avx2,avx3")


def test_levels_expand_to_every_lower_levels_flags() -> None:
    assert parse_override("x86-64") == frozenset()
    assert parse_override("x86-64-v3") == _level(3)
    assert parse_override("X86-64-V2 fma") == _level(2) | {"fma"}


@pytest.mark.parametrize(
    ("flags", "level"),
    [(_level(4), 4), (_level(3) | {"avx512f"}, 3), (_level(2) | {"avx2"}, 2), (frozenset(), 1)],
)
def test_the_level_needs_every_flag_of_it(flags: frozenset[str], level: int) -> None:
    assert _x86(*flags).x86_level == level


def test_no_x86_level_off_x86() -> None:
    arm = CpuFeatures("aarch64", "DEFAULT", frozenset())
    assert arm.x86_level == 0 and not arm.x86 and not arm.onednn_bf16


def test_onednn_packs_bf16_with_avx512_core_or_avx_ne_convert() -> None:
    assert _x86(*AVX512_CORE).onednn_bf16
    assert _x86("avx2", "avx_ne_convert").onednn_bf16
    assert not _x86("avx2", "fma", "avx512f", "avx512bw").onednn_bf16  # no VL, DQ


def test_native_bf16_is_avx512_bf16_or_amx() -> None:
    assert _x86("avx512_bf16").native_bf16
    assert _x86("amx_bf16", "amx_tile").native_bf16
    assert not _x86(*_level(4)).native_bf16
