import pytest

from inferplane.ledger.price_list import GPU_NAMES
from inferplane.planner.gpus import get_gpu, gpu_catalog


def test_catalog_names_match_the_price_list() -> None:
    assert sorted(gpu_catalog()) == sorted(GPU_NAMES)


def test_every_spec_says_where_it_comes_from() -> None:
    for spec in gpu_catalog().values():
        assert "datasheet" in spec.source or "specification" in spec.source
        assert spec.source[-4:].isdigit()  # the year of the figure


def test_units() -> None:
    h100 = get_gpu("h100-sxm")
    assert h100.memory_bytes == 81559 * 1024**2
    assert h100.bandwidth_bytes_s == 3.35e12
    assert h100.flops("bf16") == pytest.approx(989e12)
    assert h100.nvlink and not get_gpu("L40S").nvlink


def test_fp8_falls_back_to_16_bit_math_without_fp8_tensor_cores() -> None:
    a100 = get_gpu("A100-80GB")
    assert a100.flops("fp8") == a100.flops("bf16")
    h100 = get_gpu("H100-SXM")
    assert h100.flops("fp8") / h100.flops("bf16") == pytest.approx(2, rel=0.01)


def test_unknown_gpu() -> None:
    with pytest.raises(ValueError, match="use one of T4"):
        get_gpu("V100")
