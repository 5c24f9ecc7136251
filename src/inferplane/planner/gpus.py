"""The GPU catalog: memory, bandwidth, dense tensor throughput and interconnect of each GPU.

Throughputs are dense (no 2:4 sparsity) peak figures from each vendor datasheet; `bf16` means
the 16-bit tensor-core rate (fp16 on T4, which has no bf16). `memory_bytes` is what nvidia-smi
reports as the total on that card, which is less than the marketing figure on some
(a "16 GB" T4 shows 15360 MiB). Interconnect bandwidth is per direction, per GPU; the planner
uses it for tensor-parallel all-reduces. The names match the pricing catalog's.
"""

from dataclasses import dataclass

from inferplane.planner.precision import ComputePath

_MIB = 1024**2
_GB = 1e9
_TERA = 1e12


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_mib: int
    bandwidth_gb_s: float  # HBM / GDDR, per second
    bf16_tflops: float
    int8_tops: float
    fp8_tflops: float | None  # None: no fp8 tensor cores
    tf32_tflops: float
    interconnect: str
    interconnect_gb_s: float  # per direction
    max_per_node: int
    source: str

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * _MIB

    @property
    def bandwidth_bytes_s(self) -> float:
        return self.bandwidth_gb_s * _GB

    @property
    def interconnect_bytes_s(self) -> float:
        return self.interconnect_gb_s * _GB

    @property
    def nvlink(self) -> bool:
        return self.interconnect.startswith("NVLink")

    def flops(self, path: ComputePath) -> float:
        """Peak operations per second on a compute path (fp8 falls back to 16-bit math)."""
        rates = {
            "tf32": self.tf32_tflops,
            "bf16": self.bf16_tflops,
            "int8": self.int8_tops,
            "fp8": self.fp8_tflops if self.fp8_tflops is not None else self.bf16_tflops,
        }
        return rates[path] * _TERA


def gpu_catalog() -> dict[str, GpuSpec]:
    """Every GPU the planner knows, smallest memory first (a fresh dict)."""
    specs = [
        GpuSpec("T4", 15360, 320, 65, 130, None, 8.1, "PCIe 3.0", 16, 8,
                "NVIDIA T4 datasheet, 2019"),
        GpuSpec("L4", 23034, 300, 121, 242, 242, 60, "PCIe 4.0", 32, 8,
                "NVIDIA L4 datasheet, 2023"),
        GpuSpec("A10G", 23028, 600, 70, 140, None, 35, "PCIe 4.0", 32, 8,
                "AWS EC2 G5 (NVIDIA A10G) specification, 2021"),
        GpuSpec("A100-40GB", 40960, 1555, 312, 624, None, 156, "NVLink 3", 300, 8,
                "NVIDIA A100 datasheet, 2021"),
        GpuSpec("L40S", 46068, 864, 362, 733, 733, 183, "PCIe 4.0", 32, 8,
                "NVIDIA L40S datasheet, 2023"),
        GpuSpec("A100-80GB", 81920, 2039, 312, 624, None, 156, "NVLink 3", 300, 8,
                "NVIDIA A100 datasheet (SXM), 2021"),
        GpuSpec("H100-PCIe", 81559, 2000, 756, 1513, 1513, 378, "PCIe 5.0", 64, 8,
                "NVIDIA H100 datasheet (PCIe), 2023"),
        GpuSpec("H100-SXM", 81559, 3350, 989, 1979, 1979, 495, "NVLink 4", 450, 8,
                "NVIDIA H100 datasheet (SXM), 2023"),
        GpuSpec("H200", 143771, 4800, 989, 1979, 1979, 495, "NVLink 4", 450, 8,
                "NVIDIA H200 datasheet (SXM), 2024"),
        GpuSpec("B200", 183359, 8000, 2250, 4500, 4500, 1100, "NVLink 5", 900, 8,
                "NVIDIA HGX B200 datasheet, 2025"),
    ]  # fmt: skip
    return {spec.name: spec for spec in specs}


def get_gpu(name: str) -> GpuSpec:
    catalog = gpu_catalog()
    for key, spec in catalog.items():
        if key.lower() == name.lower():
            return spec
    raise ValueError(f"unknown GPU {name!r}: use one of {', '.join(catalog)}")
