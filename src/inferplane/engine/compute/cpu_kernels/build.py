"""Compile the kernel sources (kernels.c and the linear*.c files) once per machine and target,
and load them with ctypes.

The library is built with the system C compiler (`$CC`, else `cc`) for a target the host runs:
on x86 the highest x86-64 level (v4 with AVX-512, v3 with AVX2, ...) that cpu_features finds
complete, tuned for this CPU, plus AVX512_BF16 and AVX512_VNNI where the host has both
(x86-64-v4-bf16: the streaming linears' vdpbf16ps and vpdpbusd paths; every CPU with the first
has the second; a compiler that cannot build it gets x86-64-v4 instead);
elsewhere `-march=native`. A host told by
INFERPLANE_CPU_FEATURES that it has less gets the lower level, and tests build the lower
levels on purpose, so an AVX-512 machine also runs what an AVX2 host runs. The sources are the
directory's .c files (one library) and the headers they include. The build is cached
under the inferplane cache directory, keyed by the sources, the compiler, the flags and the
CPU, so a change to any of them rebuilds it. Compiling takes well under a second. Where no
compiler is found, or the build fails, `load_library` returns None and the engine runs the
same ops in torch; INFERPLANE_CPU_KERNELS=0 turns the kernels off.
"""

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from inferplane.engine.compute.cpu_features import CpuFeatures, cpu_features, switched_off
from inferplane.sources.resolve import cache_dir

log = logging.getLogger(__name__)
SOURCE_DIR = Path(__file__).parent
SOURCES = tuple(sorted(SOURCE_DIR.glob("*.c")))
HEADERS = tuple(sorted(SOURCE_DIR.glob("*.h")))
DISABLE_ENV = "INFERPLANE_CPU_KERNELS"
FLAGS = ("-O3", "-fopenmp", "-fno-math-errno", "-shared", "-fPIC")


@dataclass(frozen=True)
class BuildTarget:
    """The instruction set to compile for: a name for logs and tests, and the flags."""

    name: str
    flags: tuple[str, ...]


NATIVE = BuildTarget("native", ("-march=native",))
BF16_TARGET_FLAGS = ("avx512_bf16", "avx512_vnni")  # what x86_bf16_target adds to x86-64-v4


# What each x86-64 level adds, as compiler options: the same code as -march=x86-64-vN (GCC 11,
# clang 12 and later), spelled so that older compilers build it too.
_X86_LEVEL_OPTIONS = (
    (),
    (),
    ("-mcx16", "-msahf", "-mpopcnt", "-msse3", "-msse4.1", "-msse4.2", "-mssse3"),
    ("-mavx", "-mavx2", "-mbmi", "-mbmi2", "-mf16c", "-mfma", "-mlzcnt", "-mmovbe"),
    ("-mavx512f", "-mavx512bw", "-mavx512cd", "-mavx512dq", "-mavx512vl"),
)


def x86_target(level: int) -> BuildTarget:
    """x86-64 level 1 to 4 (psABI); -mtune only schedules, so the code runs on any such CPU."""
    name = "x86-64" if level <= 1 else f"x86-64-v{level}"
    options = [option for added in _X86_LEVEL_OPTIONS[: level + 1] for option in added]
    return BuildTarget(name, ("-march=x86-64", "-mtune=native", *options))


def x86_bf16_target() -> BuildTarget:
    """x86-64-v4 with AVX512_BF16 and AVX512_VNNI (Cooper Lake, Sapphire Rapids, Zen 4 and
    later)."""
    return BuildTarget("x86-64-v4-bf16", (*x86_target(4).flags, "-mavx512bf16", "-mavx512vnni"))


def host_target(features: CpuFeatures | None = None) -> BuildTarget:
    """The best target this host runs, as cpu_features sees it (its override included)."""
    features = features or cpu_features()
    if not features.x86:
        return NATIVE
    if features.x86_level >= 4 and features.has(*BF16_TARGET_FLAGS):
        return x86_bf16_target()
    return x86_target(features.x86_level)


def host_targets(features: CpuFeatures | None = None) -> list[BuildTarget]:
    """host_target, then what to build where that fails: the plain x86-64 level below the
    AVX512_BF16 target, for a compiler too old to know -mavx512bf16 (GCC < 10, clang < 9)."""
    features = features or cpu_features()
    best = host_target(features)
    return [best, x86_target(features.x86_level)] if best == x86_bf16_target() else [best]


class KernelBuildError(RuntimeError):
    """The compiler is missing or rejected the source."""


def enabled() -> bool:
    return not switched_off(DISABLE_ENV)


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def library_path(cc: str, cache: Path, target: BuildTarget) -> Path:
    """Where the build for these sources, compiler, target and CPU lives."""
    digest = hashlib.sha256()
    for source in (*SOURCES, *HEADERS):
        digest.update(source.read_bytes())
    flags = " ".join((*FLAGS, *target.flags))
    for part in (cc, flags, _compiler_version(cc), platform.machine(), _cpu_flags()):
        digest.update(part.encode())
    return cache / "kernels" / f"cpu-{target.name}-{digest.hexdigest()[:16]}.so"


def build(cc: str, path: Path, target: BuildTarget) -> Path:
    """Compile into `path` (atomically: concurrent builders never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(handle)
    command = [cc, *FLAGS, *target.flags, "-o", temporary, *map(str, SOURCES)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KernelBuildError(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


@functools.cache
def load_library(target: BuildTarget) -> ctypes.CDLL | None:
    """The kernels compiled for `target`, or None (no compiler, or a failed build: logged).
    The caller makes sure this CPU runs `target` (see host_target)."""
    cc = compiler()
    if cc is None:
        log.warning("no C compiler found ($CC or cc): CPU kernels off, torch ops instead")
        return None
    # torch first: the library then binds to the OpenMP runtime torch already loaded.
    import torch  # noqa: F401, PLC0415

    try:
        path = library_path(cc, cache_dir(), target)
        if not path.exists():
            build(cc, path, target)
        return ctypes.CDLL(str(path))
    except (OSError, KernelBuildError) as error:
        log.warning("CPU kernels unavailable, torch ops instead: %s", error)
        return None


def _compiler_version(cc: str) -> str:
    result = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return result.stdout


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), so a cache shared across machines never mixes ISAs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def kernel_library(target: BuildTarget | None = None) -> ctypes.CDLL | None:
    """The library this machine's kernels come from: built for `target`, else for the best
    target the host runs that the compiler builds; None where the kernels are off or cannot
    be built."""
    if not enabled():
        return None
    for candidate in [target] if target is not None else host_targets():
        library = load_library(candidate)
        if library is not None:
            return library
    return None
