"""GPU metrics from NVML, under dcgm-exporter's names so DCGM dashboards work unchanged.

`GpuCollector` is a prometheus_client collector: each scrape reads every device through an
`NvmlApi` (the real one wraps nvidia-ml-py; tests hand in a fixed device table) and emits
utilisation, framebuffer used / free, temperature, power, SM clock and throttle reasons with
dcgm-exporter's labels (gpu, UUID, modelName, Hostname) and units (MiB, W, MHz, C, %), plus
inference_gpu_* in bytes and per-process memory. Without a GPU (NVML fails to start, or finds
no device) it logs that once and exports nothing.
"""

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inferplane.telemetry import names
from inferplane.telemetry.names import MetricSpec

MIB = 2**20
NVML_TEMPERATURE_GPU = 0  # NVML's enum values (a stable ABI), so pynvml loads only on use
NVML_CLOCK_SM = 1
DEVICE_SPECS = (
    names.DCGM_GPU_UTIL,
    names.DCGM_FB_USED,
    names.DCGM_FB_FREE,
    names.DCGM_GPU_TEMP,
    names.DCGM_POWER_USAGE,
    names.DCGM_SM_CLOCK,
    names.DCGM_THROTTLE_REASONS,
    names.GPU_UTILIZATION,
    names.GPU_MEMORY_USED,
    names.GPU_MEMORY_TOTAL,
    names.GPU_PROCESS_MEMORY,
)


class NvmlError(Exception):
    """NVML could not answer (no driver, no device, or a field the device does not support)."""


@dataclass(frozen=True)
class GpuMemory:
    used: int
    free: int
    total: int


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_bytes: int


class NvmlApi(Protocol):
    """The NVML reads the collector needs, in NVML's own units; each may raise NvmlError."""

    def init(self) -> None: ...
    def device_count(self) -> int: ...
    def uuid(self, index: int) -> str: ...
    def name(self, index: int) -> str: ...
    def utilization_percent(self, index: int) -> float: ...
    def memory(self, index: int) -> GpuMemory: ...
    def temperature_c(self, index: int) -> float: ...
    def power_milliwatts(self, index: int) -> float: ...
    def sm_clock_mhz(self, index: int) -> float: ...
    def throttle_reasons(self, index: int) -> int: ...
    def processes(self, index: int) -> list[GpuProcess]: ...


class GpuCollector(Collector):
    """Reads every GPU at scrape time; silent (after one log line) where there is none."""

    def __init__(
        self,
        api: NvmlApi,
        hostname: str | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.api = api
        self.hostname = hostname or socket.gethostname()
        self.log = log or logging.getLogger(__name__)
        self._state: bool | None = None  # None: not tried yet; False: no GPU, said once

    def available(self) -> bool:
        """Start NVML on first use; False (logged once) when there is no usable GPU."""
        if self._state is None:
            self._state = self._start()
        return self._state

    def _start(self) -> bool:
        try:
            self.api.init()
            count = self.api.device_count()
        except NvmlError as error:
            self.log.info("no NVIDIA GPU metrics: NVML is not available (%s)", error)
            return False
        if count == 0:
            self.log.info("no NVIDIA GPU metrics: NVML found no device")
            return False
        return True

    def collect(self) -> Iterator[Metric]:
        if not self.available():
            return
        families = {
            s.name: GaugeMetricFamily(s.name, s.help, labels=s.labels) for s in DEVICE_SPECS
        }
        try:
            count = self.api.device_count()
        except NvmlError as error:
            self.log.warning("NVML stopped answering: %s", error)
            return
        for index in range(count):
            self._read_device(index, families)
        yield from (family for family in families.values() if family.samples)

    def _read_device(self, index: int, families: dict[str, GaugeMetricFamily]) -> None:
        try:
            labels = [str(index), self.api.uuid(index), self.api.name(index), self.hostname]
        except NvmlError as error:
            self.log.debug("GPU %d has no identity: %s", index, error)
            return

        def add(spec: MetricSpec, read: Callable[[], float]) -> None:
            value = _read(read)
            if value is not None:
                families[spec.name].add_metric(labels, value)

        api = self.api
        add(names.DCGM_GPU_UTIL, lambda: api.utilization_percent(index))
        add(names.GPU_UTILIZATION, lambda: api.utilization_percent(index))
        add(names.DCGM_GPU_TEMP, lambda: api.temperature_c(index))
        add(names.DCGM_POWER_USAGE, lambda: api.power_milliwatts(index) / 1000.0)
        add(names.DCGM_SM_CLOCK, lambda: api.sm_clock_mhz(index))
        add(names.DCGM_THROTTLE_REASONS, lambda: float(api.throttle_reasons(index)))
        self._memory(index, labels, families)

    def _memory(
        self, index: int, labels: list[str], families: dict[str, GaugeMetricFamily]
    ) -> None:
        try:
            memory = self.api.memory(index)
        except NvmlError:
            return
        families[names.DCGM_FB_USED.name].add_metric(labels, memory.used / MIB)
        families[names.DCGM_FB_FREE.name].add_metric(labels, memory.free / MIB)
        families[names.GPU_MEMORY_USED.name].add_metric(labels, float(memory.used))
        families[names.GPU_MEMORY_TOTAL.name].add_metric(labels, float(memory.total))
        try:
            processes = self.api.processes(index)
        except NvmlError:
            return
        per_process = families[names.GPU_PROCESS_MEMORY.name]
        for process in processes:
            per_process.add_metric([labels[0], labels[1], str(process.pid)], process.used_bytes)


def _read(read: Callable[[], float]) -> float | None:
    """One field; None where the device does not support it (older boards lack power, ...)."""
    try:
        return float(read())
    except NvmlError:
        return None


class PynvmlApi:
    """The real NVML, through nvidia-ml-py (imported on first use)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: dict[int, Any] = {}

    def _call(self, function: str, *args: Any) -> Any:
        try:
            if self._nvml is None:
                import pynvml  # noqa: PLC0415 (only hosts that ask for GPU metrics load it)

                self._nvml = pynvml
            return getattr(self._nvml, function)(*args)
        except Exception as error:  # pynvml raises NVMLError subclasses, and OSError on load
            raise NvmlError(str(error) or type(error).__name__) from error

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._call("nvmlDeviceGetHandleByIndex", index)
        return self._handles[index]

    def _device(self, function: str, index: int, *args: Any) -> Any:
        return self._call(function, self._handle(index), *args)

    def init(self) -> None:
        self._call("nvmlInit")

    def device_count(self) -> int:
        return int(self._call("nvmlDeviceGetCount"))

    def uuid(self, index: int) -> str:
        return _text(self._device("nvmlDeviceGetUUID", index))

    def name(self, index: int) -> str:
        return _text(self._device("nvmlDeviceGetName", index))

    def utilization_percent(self, index: int) -> float:
        return float(self._device("nvmlDeviceGetUtilizationRates", index).gpu)

    def memory(self, index: int) -> GpuMemory:
        info = self._device("nvmlDeviceGetMemoryInfo", index)
        return GpuMemory(int(info.used), int(info.free), int(info.total))

    def temperature_c(self, index: int) -> float:
        return float(self._device("nvmlDeviceGetTemperature", index, NVML_TEMPERATURE_GPU))

    def power_milliwatts(self, index: int) -> float:
        return float(self._device("nvmlDeviceGetPowerUsage", index))

    def sm_clock_mhz(self, index: int) -> float:
        return float(self._device("nvmlDeviceGetClockInfo", index, NVML_CLOCK_SM))

    def throttle_reasons(self, index: int) -> int:
        try:
            return int(self._device("nvmlDeviceGetCurrentClocksEventReasons", index))
        except NvmlError:  # drivers before 535 know only the older name
            return int(self._device("nvmlDeviceGetCurrentClocksThrottleReasons", index))

    def processes(self, index: int) -> list[GpuProcess]:
        found = self._device("nvmlDeviceGetComputeRunningProcesses", index)
        return [GpuProcess(int(p.pid), int(p.usedGpuMemory or 0)) for p in found]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
