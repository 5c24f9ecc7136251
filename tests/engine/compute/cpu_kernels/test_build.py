"""Building the kernel library: into a cache directory, atomically, with clear failures."""

import ctypes
import shutil
from pathlib import Path

import pytest

from inferplane.engine.compute.cpu_kernels import cpu_kernels
from inferplane.engine.compute.cpu_kernels.build import (
    DISABLE_ENV,
    KernelBuildError,
    build,
    compiler,
    library_path,
)


def _cc() -> str:
    cc = compiler()
    if cc is None:
        pytest.skip("no C compiler on this machine")
    return cc


def test_builds_a_loadable_library_under_the_cache(tmp_path: Path) -> None:
    cc = _cc()
    target = library_path(cc, tmp_path)
    assert target.parent == tmp_path / "kernels"
    build(cc, target)
    library = ctypes.CDLL(str(target))
    library.ip_isa.restype = ctypes.c_char_p
    assert library.ip_isa().decode() in {"avx512", "avx2", "portable"}
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind


def test_the_cache_key_names_the_compiler(tmp_path: Path) -> None:
    cc = _cc()
    assert library_path(cc, tmp_path) == library_path(cc, tmp_path)
    other = shutil.which("c99") or shutil.which("gcc")
    if other is None or Path(other).resolve() == Path(cc).resolve():
        pytest.skip("only one compiler here")
    assert library_path(other, tmp_path) != library_path(cc, tmp_path)


def test_a_failing_compiler_raises_and_leaves_nothing(tmp_path: Path) -> None:
    failing = shutil.which("false")
    assert failing is not None
    target = tmp_path / "kernels" / "cpu-x.so"
    with pytest.raises(KernelBuildError, match="failed"):
        build(failing, target)
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_the_environment_turns_the_kernels_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(DISABLE_ENV, value)
    assert cpu_kernels() is None
