import pytest

from inferplane.config.schema import GpuInventory
from inferplane.control.inventory import (
    declared_inventory,
    gpu_matches,
    is_mig_capable,
    nvml_inventory,
)


def test_declared_inventory_numbers_gpus_in_order() -> None:
    devices = declared_inventory(
        [GpuInventory(gpu="H100", count=2, mig=True), GpuInventory(gpu="L4")]
    )
    assert [(d.index, d.name, d.mig) for d in devices] == [
        (0, "H100", True), (1, "H100", True), (2, "L4", False)]  # fmt: skip
    assert devices[0].memory_bytes == 81559 * 1024**2
    assert devices[0].mig_capable and not devices[2].mig_capable


def test_memory_override_and_unknown_gpus() -> None:
    devices = declared_inventory([GpuInventory(gpu="RTX-4090", memory_gib=24)])
    assert devices[0].memory_bytes == 24 * 1024**3
    with pytest.raises(ValueError, match="unknown GPU 'RTX-4090'"):
        declared_inventory([GpuInventory(gpu="RTX-4090")])


def test_ambiguous_family_needs_a_full_name() -> None:
    with pytest.raises(ValueError, match="A100-40GB or A100-80GB"):
        declared_inventory([GpuInventory(gpu="A100")])


def test_mig_only_on_80gb_class_gpus() -> None:
    assert is_mig_capable("H100") and is_mig_capable("A100-80GB")
    assert not is_mig_capable("A100-40GB") and not is_mig_capable("L4")
    with pytest.raises(ValueError, match="cannot be split"):
        declared_inventory([GpuInventory(gpu="L4", mig=True)])


@pytest.mark.parametrize(
    ("kind", "name", "matches"),
    [("H100", "H100-SXM", True), ("H100-SXM", "H100", True), ("H100", "H100 80GB HBM3", True),
     ("A100-80GB", "A100-SXM4-80GB", True), ("L4", "L40S", False),
     ("H100-SXM", "H100-PCIe", False), ("h100", "H100", True)],
)  # fmt: skip
def test_gpu_matches(kind: str, name: str, matches: bool) -> None:
    assert gpu_matches(kind, name) is matches


def test_nvml_inventory_is_a_list_even_without_a_driver() -> None:
    devices = nvml_inventory()
    assert all(device.memory_bytes > 0 for device in devices)
