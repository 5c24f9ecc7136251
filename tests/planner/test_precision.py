import pytest

from inferplane.planner.precision import (
    get_precision,
    lighter_precisions,
    precisions,
    served_format,
)


def test_aliases_and_unknown_names() -> None:
    assert get_precision("bfloat16").name == "bf16"
    assert get_precision("FP16").name == "fp16"
    with pytest.raises(ValueError, match="use one of fp32, bf16"):
        get_precision("int3")


def test_bytes_per_weight() -> None:
    table = precisions()
    assert [table[n].linear_bytes for n in ("fp32", "bf16", "fp8", "int8")] == [4, 2, 1, 1]
    assert table["int4"].linear_bytes == pytest.approx(0.5 + 2.5 / 128)
    assert table["fp8"].kv_bytes == 1 and table["int4"].kv_bytes == 2


def test_lighter_precisions() -> None:
    assert lighter_precisions("fp32") == ["bf16", "fp8", "int4"]
    assert lighter_precisions("int8") == ["int4"]
    assert lighter_precisions("int4") == []


def test_q4_0_is_gguf_blocks_and_what_a_fleet_serves_is_planned_as_such() -> None:
    q4 = get_precision("q4_0")
    assert q4.linear_bytes == pytest.approx(0.5625)  # 4 bits + an fp16 scale per 32
    assert lighter_precisions("q4_0") == []
    assert served_format("auto", "none") == "bf16"
    assert served_format("float32", "none") == "float32"
    assert served_format("bfloat16", "int8") == "int8"
    assert served_format("float32", "q4_0") == "q4_0"
