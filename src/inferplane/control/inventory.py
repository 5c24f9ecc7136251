"""GPU inventories for placement: declared in the fleet file, or read from NVML.

A declared entry names a catalog GPU ("H100" matches H100-SXM and H100-PCIe, which have the
same memory; "A100" is ambiguous and must say A100-40GB or A100-80GB) or gives memory_gib.
Declared GPUs are numbered in file order, as CUDA would number them on one machine.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inferplane.config.schema import GpuInventory
from inferplane.planner.gpus import GpuSpec, gpu_catalog

_GIB = 1024**3
# GPUs whose MIG profiles are the 80 GB ones mig.py models.
MIG_CAPABLE = ("A100-80GB", "H100-PCIe", "H100-SXM")


@dataclass(frozen=True)
class GpuDevice:
    """One GPU: its CUDA index, name and memory; `mig` when it is (to be) split into slices."""

    index: int
    name: str
    memory_bytes: int
    mig_capable: bool = False
    mig: bool = False


def catalog_matches(name: str) -> list[GpuSpec]:
    """Catalog GPUs a name means: the exact one, or those it is a family prefix of."""
    lowered = name.lower()
    catalog = gpu_catalog().values()
    exact = [spec for spec in catalog if spec.name.lower() == lowered]
    return exact or [spec for spec in catalog if spec.name.lower().startswith(lowered + "-")]


def gpu_matches(kind: str, device_name: str) -> bool:
    """Whether a pool's `resources.gpu` asks for a device of this name.

    Names match when the words of one are all in the other: H100 matches H100-SXM and
    NVML's "H100 80GB HBM3"; A100-80GB matches "A100-SXM4-80GB"; L4 does not match L40S.
    """
    wanted, offered = _words(kind), _words(device_name)
    return wanted <= offered or offered <= wanted


def _words(name: str) -> set[str]:
    return set(name.lower().replace("-", " ").split())


def is_mig_capable(name: str) -> bool:
    specs = catalog_matches(name)
    return bool(specs) and all(spec.name in MIG_CAPABLE for spec in specs)


def declared_inventory(entries: Sequence[GpuInventory]) -> list[GpuDevice]:
    devices: list[GpuDevice] = []
    for entry in entries:
        memory = _memory_bytes(entry)
        capable = is_mig_capable(entry.gpu)
        if entry.mig and not capable:
            raise ValueError(
                f"inventory GPU {entry.gpu!r} cannot be split with the 80 GB MIG profiles: "
                f"set mig: false, or use one of {', '.join(MIG_CAPABLE)}"
            )
        for _ in range(entry.count):
            devices.append(GpuDevice(len(devices), entry.gpu, memory, capable, entry.mig))
    return devices


def _memory_bytes(entry: GpuInventory) -> int:
    if entry.memory_gib is not None:
        return int(entry.memory_gib * _GIB)
    specs = catalog_matches(entry.gpu)
    sizes = {spec.memory_bytes for spec in specs}
    if len(sizes) == 1:
        return sizes.pop()
    if not specs:
        known = ", ".join(gpu_catalog())
        raise ValueError(f"unknown GPU {entry.gpu!r}: use one of {known}, or give memory_gib")
    names = " or ".join(spec.name for spec in specs)
    raise ValueError(f"GPU {entry.gpu!r} is ambiguous: say {names}, or give memory_gib")


def nvml_inventory() -> list[GpuDevice]:
    """The GPUs NVML sees on this machine; empty without a driver or without nvidia-ml-py."""
    try:
        import pynvml  # noqa: PLC0415  (optional: only machines with a GPU have a driver)

        nvml: Any = pynvml
        nvml.nvmlInit()
    except Exception:  # ImportError, OSError on load, NVMLError without a driver
        return []
    try:
        return [_nvml_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    finally:
        nvml.nvmlShutdown()


def _nvml_device(nvml: Any, index: int) -> GpuDevice:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = nvml.nvmlDeviceGetName(handle)
    name = name.decode() if isinstance(name, bytes) else str(name)
    memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        capable, enabled = True, bool(current)
    except nvml.NVMLError:  # boards without MIG say "not supported"
        capable, enabled = False, False
    return GpuDevice(index, name.removeprefix("NVIDIA ").strip(), memory, capable, enabled)
