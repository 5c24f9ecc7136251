"""Mooncake JSONL traces and telling the two trace formats apart (sim/mooncake.py, sim/load.py)."""

import json
from pathlib import Path

import pytest

from inferplane.sim.load import load_trace, trace_format
from inferplane.sim.mooncake import load_mooncake_trace

DATA = Path(__file__).parent / "data"
SLICE = DATA / "mooncake_300.jsonl"


def _line(stamp: float, prompt: int, out: int, ids: list[int]) -> str:
    return json.dumps({"timestamp": stamp, "input_length": prompt, "output_length": out,
                       "hash_ids": ids})  # fmt: skip


def test_the_slice_reads_with_arrivals_from_its_first_line_in_seconds() -> None:
    trace = load_mooncake_trace(SLICE)
    first = json.loads(SLICE.read_text().splitlines()[0])
    assert len(trace) == 300 and trace.block_tokens == 512
    head = trace.requests[0]
    assert head.arrival_s == 0.0 and head.prompt_tokens == first["input_length"]
    assert head.hash_ids == tuple(first["hash_ids"])
    assert head.output_tokens == first["output_length"]
    assert trace.span_s == pytest.approx(69.196)
    fast = load_mooncake_trace(SLICE, speedup=2.0, limit=10)
    assert len(fast) == 10
    assert fast.requests[9].arrival_s == pytest.approx(trace.requests[9].arrival_s / 2)


def test_the_format_comes_from_the_content_not_the_name(tmp_path: Path) -> None:
    disguised = tmp_path / "trace.csv"
    disguised.write_text(_line(0, 600, 5, [1, 2]) + "\n\n" + _line(1500, 10, 5, [1]) + "\n")
    assert trace_format(disguised) == "mooncake"
    trace = load_trace(disguised)
    assert [r.arrival_s for r in trace.requests] == [0.0, 1.5]
    azure = load_trace(DATA / "azure_conv_1000.csv", limit=3)
    assert trace_format(DATA / "azure_conv_1000.csv") == "azure" and len(azure) == 3
    assert azure.requests[0].hash_ids == () and azure.block_tokens == 0


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("{not json", "line 2"),
        (json.dumps([1, 2]), "JSON object"),
        (json.dumps({"timestamp": 5, "input_length": 10}), "missing output_length, hash_ids"),
        (_line(5, 10, 0, [1]), "integers >= 1"),
        (_line(-1, 10, 1, [1]), "milliseconds >= 0"),
        (_line(5, 1000, 1, [1]), "expected 2"),
        (_line(5, 10, 1, [-3]), "hash_ids must be a list of integers"),
        (_line(5, 10, True, [1]), "integers >= 1"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, line: str, complaint: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line(0, 10, 1, [7]) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=complaint) as caught:
        load_trace(bad)
    assert "line 2" in str(caught.value)


def test_unsorted_empty_and_unknown_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line(10, 10, 1, [7]) + "\n" + _line(5, 10, 1, [8]) + "\n")
    with pytest.raises(ValueError, match="sorted by timestamp"):
        load_trace(bad)
    bad.write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        load_trace(bad)
    bad.write_text("\nhello world\n")
    with pytest.raises(ValueError, match=r"line 2: expected an Azure LLM trace CSV"):
        load_trace(bad)
