"""Compile kernels.c once per machine and load it with ctypes.

The library is built with the system C compiler (`$CC`, else `cc`) for the CPU it runs on
(`-march=native`) and cached under the inferplane cache directory, keyed by the source, the
compiler and the CPU, so a change to any of them rebuilds it. Compiling takes well under a
second. Where no compiler is found, or the build fails, `load_library` returns None and the
engine runs the same ops in torch; INFERPLANE_CPU_KERNELS=0 turns the kernels off.
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
from pathlib import Path

from inferplane.sources.resolve import cache_dir

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("kernels.c")
DISABLE_ENV = "INFERPLANE_CPU_KERNELS"
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-shared", "-fPIC")


class KernelBuildError(RuntimeError):
    """The compiler is missing or rejected the source."""


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def library_path(cc: str, cache: Path) -> Path:
    """Where the build for this source, compiler and CPU lives."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    for part in (cc, " ".join(FLAGS), _compiler_version(cc), platform.machine(), _cpu_flags()):
        digest.update(part.encode())
    return cache / "kernels" / f"cpu-{digest.hexdigest()[:16]}.so"


def build(cc: str, target: Path) -> Path:
    """Compile into `target` (atomically: concurrent builders never see half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    command = [cc, *FLAGS, "-o", temporary, str(SOURCE)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KernelBuildError(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


@functools.cache
def load_library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (no compiler, or a failed build: logged)."""
    cc = compiler()
    if cc is None:
        log.warning("no C compiler found ($CC or cc): CPU kernels off, torch ops instead")
        return None
    # torch first: the library then binds to the OpenMP runtime torch already loaded.
    import torch  # noqa: F401, PLC0415

    try:
        path = library_path(cc, cache_dir())
        if not path.exists():
            build(cc, path)
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
