"""The GPU collector over a fixed NVML device table (the seam), and the real NVML binding
where this machine has no GPU (it must say so once and export nothing)."""

import logging
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inferplane.telemetry import names
from inferplane.telemetry.gpu import (
    GpuCollector,
    GpuMemory,
    GpuProcess,
    NvmlError,
    PynvmlApi,
)

GIB = 2**30


@dataclass
class Device:
    uuid: str
    name: str
    utilization: float
    memory: GpuMemory
    temperature: float
    power_mw: float | None  # None: the board does not report power
    sm_clock: float
    throttle: int
    processes: list[GpuProcess] = field(default_factory=list)


@dataclass
class FakeNvml:
    """NVML as a table of devices, in NVML's units (bytes, milliwatts)."""

    devices: list[Device]
    init_error: str | None = None
    inits: int = 0

    def init(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise NvmlError(self.init_error)

    def device_count(self) -> int:
        return len(self.devices)

    def uuid(self, index: int) -> str:
        return self.devices[index].uuid

    def name(self, index: int) -> str:
        return self.devices[index].name

    def utilization_percent(self, index: int) -> float:
        return self.devices[index].utilization

    def memory(self, index: int) -> GpuMemory:
        return self.devices[index].memory

    def temperature_c(self, index: int) -> float:
        return self.devices[index].temperature

    def power_milliwatts(self, index: int) -> float:
        power = self.devices[index].power_mw
        if power is None:
            raise NvmlError("Not Supported")
        return power

    def sm_clock_mhz(self, index: int) -> float:
        return self.devices[index].sm_clock

    def throttle_reasons(self, index: int) -> int:
        return self.devices[index].throttle

    def processes(self, index: int) -> list[GpuProcess]:
        return self.devices[index].processes


def _table() -> FakeNvml:
    return FakeNvml(
        [
            Device(
                "GPU-aaaa",
                "NVIDIA H100 80GB HBM3",
                87.0,
                GpuMemory(used=60 * GIB, free=20 * GIB, total=80 * GIB),
                71.0,
                612_500.0,
                1980.0,
                0,
                [GpuProcess(4242, 59 * GIB)],
            ),
            Device(
                "GPU-bbbb",
                "NVIDIA L4",
                12.0,
                GpuMemory(used=1 * GIB, free=23 * GIB, total=24 * GIB),
                45.0,
                None,
                1410.0,
                4,
            ),
        ]
    )


def _scrape(collector: GpuCollector) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, sample.labels.get("gpu", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_devices_are_published_under_dcgm_names_and_units() -> None:
    values = _scrape(GpuCollector(_table(), hostname="node-1"))
    assert values[("DCGM_FI_DEV_GPU_UTIL", "0")] == 87.0
    assert values[("DCGM_FI_DEV_FB_USED", "0")] == 60 * 1024  # MiB
    assert values[("DCGM_FI_DEV_FB_FREE", "0")] == 20 * 1024
    assert values[("DCGM_FI_DEV_GPU_TEMP", "0")] == 71.0
    assert values[("DCGM_FI_DEV_POWER_USAGE", "0")] == 612.5  # W
    assert values[("DCGM_FI_DEV_SM_CLOCK", "1")] == 1410.0
    assert values[("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "1")] == 4
    assert values[("inference_gpu_utilization_percent", "1")] == 12.0
    assert values[("inference_gpu_memory_used_bytes", "0")] == 60 * GIB
    assert values[("inference_gpu_memory_total_bytes", "1")] == 24 * GIB
    assert values[("inference_gpu_process_memory_used_bytes", "0")] == 59 * GIB


def test_labels_are_dcgm_exporters() -> None:
    registry = CollectorRegistry()
    registry.register(GpuCollector(_table(), hostname="node-1"))
    text = generate_latest(registry).decode()
    assert (
        'DCGM_FI_DEV_GPU_TEMP{Hostname="node-1",UUID="GPU-aaaa",gpu="0",'
        'modelName="NVIDIA H100 80GB HBM3"} 71.0'
    ) in text
    assert 'inference_gpu_process_memory_used_bytes{UUID="GPU-aaaa",gpu="0",pid="4242"}' in text
    for family in text_string_to_metric_families(text):
        assert family.name in names.BY_NAME


def test_a_field_the_board_lacks_is_left_out_not_zero() -> None:
    values = _scrape(GpuCollector(_table(), hostname="h"))
    assert ("DCGM_FI_DEV_POWER_USAGE", "1") not in values
    assert ("DCGM_FI_DEV_GPU_TEMP", "1") in values


def test_no_gpu_logs_once_and_exports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeNvml([], init_error="NVML Shared Library Not Found")
    collector = GpuCollector(api, hostname="h")
    with caplog.at_level(logging.INFO, logger="inferplane.telemetry.gpu"):
        assert _scrape(collector) == {}
        assert _scrape(collector) == {}
    assert api.inits == 1
    said = [r.getMessage() for r in caplog.records if "no NVIDIA GPU" in r.getMessage()]
    assert said == ["no NVIDIA GPU metrics: NVML is not available (NVML Shared Library Not Found)"]


def test_zero_devices_is_no_gpu_too(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="inferplane.telemetry.gpu"):
        assert _scrape(GpuCollector(FakeNvml([]), hostname="h")) == {}
    assert "NVML found no device" in caplog.text


def test_the_real_binding_without_a_gpu_exports_nothing() -> None:
    api = PynvmlApi()
    try:
        api.init()
    except NvmlError:
        pass
    else:
        pytest.skip("this machine has NVML: tests/gpu/test_nvml.py covers it")
    assert _scrape(GpuCollector(PynvmlApi(), hostname="h")) == {}
