"""What the host CPU can run: torch's dispatch level plus the instruction-set flags that the
engine's CPU fast paths need (oneDNN's bfloat16 packing, the compiled kernels' build target).

Flags come from /proc/cpuinfo on Linux (the kernel lists only what the OS also enables). Where
that file is missing, the x86-64 level that torch's own dispatch level implies stands in. Each fast
path asks `cpu_features()` and takes its correct, slower path where a flag is missing, so a
host without AVX-512 never runs an instruction it lacks.

INFERPLANE_CPU_FEATURES pretends the host has fewer features, to exercise those fallbacks on
any machine: a comma-separated list of flags and x86-64 levels (`x86-64-v3` is an AVX2 host
such as an AMD EPYC before Zen 4). The host keeps only what the list names; a name the list
cannot take fails loudly. Torch and oneDNN do not read it; their own switches are
ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA.
"""

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

OVERRIDE_ENV = "INFERPLANE_CPU_FEATURES"
CPUINFO = Path("/proc/cpuinfo")
_X86 = frozenset({"x86_64", "amd64"})  # platform.machine(), lower case

# The flags each x86-64 micro-architecture level (psABI) adds to the one before, indexed by
# level, in Linux's names. Level 1 (SSE2) is every x86-64 CPU, so it needs no flag.
X86_LEVELS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset(),
    frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}),
    frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe"}),
    frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
)
EXTRA_FLAGS = frozenset(
    {"avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile", "avx_ne_convert"}
)
KNOWN_FLAGS: frozenset[str] = frozenset().union(*X86_LEVELS, EXTRA_FLAGS)
LEVEL_NAMES = {"x86-64": 1, "x86-64-v2": 2, "x86-64-v3": 3, "x86-64-v4": 4}
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})

# torch.backends.cpu.get_cpu_capability()'s x86 levels, lowest first, and the flags each needs
_X86_CAPABILITIES = ("DEFAULT", "AVX2", "AVX512")
_CAPABILITY_FLAGS = {"AVX2": frozenset({"avx2", "fma"}), "AVX512": AVX512_CORE | {"fma"}}


@dataclass(frozen=True)
class CpuFeatures:
    """One host's CPU, as the engine's fast paths see it."""

    machine: str  # platform.machine(), lower case: x86_64, aarch64, arm64 ...
    capability: str  # torch's dispatch level: DEFAULT, AVX2, AVX512 (x86), or another arch's
    flags: frozenset[str]  # the KNOWN_FLAGS this host has
    overridden: bool = False  # INFERPLANE_CPU_FEATURES took some away

    def has(self, *flags: str) -> bool:
        return set(flags) <= self.flags

    @property
    def x86(self) -> bool:
        return self.machine in _X86

    @property
    def x86_level(self) -> int:
        """The highest x86-64 level (1 to 4) whose flags are all present; 0 off x86."""
        if not self.x86:
            return 0
        level = 1
        while level + 1 < len(X86_LEVELS) and X86_LEVELS[level + 1] <= self.flags:
            level += 1
        return level

    @property
    def onednn_bf16(self) -> bool:
        """oneDNN's bfloat16 weight packing: AVX-512 core (BW, VL, DQ) or AVX-NE-CONVERT."""
        return self.x86 and (self.has(*AVX512_CORE) or self.has("avx_ne_convert"))

    @property
    def native_bf16(self) -> bool:
        """bfloat16 dot products in hardware (AVX512_BF16 or AMX)."""
        return self.has("avx512_bf16") or self.has("amx_bf16", "amx_tile")


def cpu_features() -> CpuFeatures:
    """This host's features, less what INFERPLANE_CPU_FEATURES takes away (read per call,
    so a test may set it; the detection behind it runs once per process)."""
    return _with_override(os.environ.get(OVERRIDE_ENV, "").strip())


@functools.cache
def _with_override(override: str) -> CpuFeatures:
    host = host_features()
    if not override:
        return host
    kept = parse_override(override) & host.flags
    capability = _capped_capability(host, kept)
    return CpuFeatures(host.machine, capability, frozenset(kept), overridden=True)


@functools.cache
def host_features() -> CpuFeatures:
    """The host as detected, once per process."""
    capability = torch.backends.cpu.get_cpu_capability()
    return detect(platform.machine().lower(), capability, CPUINFO)


def detect(machine: str, capability: str, cpuinfo: Path) -> CpuFeatures:
    """`cpuinfo`'s flags, else (no such file) those torch's dispatch level implies."""
    listed = _cpuinfo_flags(cpuinfo)
    if listed is None:
        # every CPU torch runs at AVX2 (AVX512) also has the rest of x86-64-v3 (v4)
        level = {"AVX2": 3, "AVX512": 4}.get(capability, 1) if machine in _X86 else 0
        listed = set().union(*X86_LEVELS[: level + 1])
    return CpuFeatures(machine, capability, frozenset(listed & KNOWN_FLAGS))


def parse_override(value: str) -> frozenset[str]:
    """The flags a comma-separated list of flags and `x86-64[-vN]` levels names."""
    names: set[str] = set()
    for raw in value.replace(" ", ",").split(","):
        name = raw.strip().lower()
        if not name:
            continue
        level = LEVEL_NAMES.get(name)
        if level is not None:
            names.update(*X86_LEVELS[: level + 1])
        elif name in KNOWN_FLAGS:
            names.add(name)
        else:
            known = ", ".join([*LEVEL_NAMES, *sorted(KNOWN_FLAGS)])
            raise ValueError(f"{OVERRIDE_ENV}: unknown CPU feature {raw.strip()!r}; use {known}")
    return frozenset(names)


def _capped_capability(host: CpuFeatures, kept: frozenset[str]) -> str:
    """Torch's level, lowered to what the kept flags allow (x86 levels only)."""
    if host.capability not in _X86_CAPABILITIES:
        return host.capability
    allowed = _X86_CAPABILITIES[: _X86_CAPABILITIES.index(host.capability) + 1]
    return [name for name in allowed if _CAPABILITY_FLAGS.get(name, frozenset()) <= kept][-1]


def _cpuinfo_flags(cpuinfo: Path) -> set[str] | None:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return set(value.split())
    return None


def onednn_computes_bf16() -> bool:
    """Whether oneDNN computes bfloat16 natively here: the host's features (as pretended, see
    OVERRIDE_ENV) and torch's own oneDNN check, which also sees ONEDNN_MAX_CPU_ISA."""
    return cpu_features().onednn_bf16 and _onednn_packs_bf16()


def _onednn_packs_bf16() -> bool:
    mkldnn = torch.ops.mkldnn
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    if not hasattr(mkldnn, "_reorder_linear_weight"):
        return False
    return not hasattr(mkldnn, "_is_mkldnn_bf16_supported") or bool(
        mkldnn._is_mkldnn_bf16_supported()
    )


def switched_off(variable: str) -> bool:
    """Whether the environment turns a CPU fast path off (`0`, `false`, `no` or `off`)."""
    return os.environ.get(variable, "1").strip().lower() in ("0", "false", "no", "off")
