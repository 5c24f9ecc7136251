"""The GPU collector on a real NVIDIA GPU, through the real NVML (skipped elsewhere)."""

import os

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inferplane.telemetry.gpu import GpuCollector, NvmlError, PynvmlApi

pytestmark = pytest.mark.gpu


@pytest.fixture
def nvml() -> PynvmlApi:
    api = PynvmlApi()
    try:
        api.init()
        if api.device_count() == 0:
            pytest.skip("NVML found no GPU")
    except NvmlError as error:
        pytest.skip(f"no NVIDIA GPU here: {error}")
    return api


def test_real_devices_are_published(nvml: PynvmlApi) -> None:
    registry = CollectorRegistry()
    registry.register(GpuCollector(nvml))
    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP"):
        assert len(families[name].samples) == nvml.device_count(), name
    util = families["DCGM_FI_DEV_GPU_UTIL"].samples[0]
    assert 0 <= util.value <= 100
    assert util.labels["UUID"].startswith(("GPU-", "MIG-"))
    memory = nvml.memory(0)
    total_mib = memory.total / 2**20
    used = families["DCGM_FI_DEV_FB_USED"].samples[0].value
    free = families["DCGM_FI_DEV_FB_FREE"].samples[0].value
    assert 0 < used + free <= total_mib + 1
    assert 0 < families["DCGM_FI_DEV_GPU_TEMP"].samples[0].value < 110
    assert families["DCGM_FI_DEV_SM_CLOCK"].samples[0].value > 0


def test_this_process_shows_its_memory(nvml: PynvmlApi) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available to torch")
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    index = torch.cuda.current_device()
    processes = {p.pid: p.used_bytes for p in nvml.processes(index)}
    del block
    if os.getpid() not in processes:
        pytest.skip("NVML does not see this process's pid (a container's pid namespace)")
    assert processes[os.getpid()] >= 256 * 2**20
