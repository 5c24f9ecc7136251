from pathlib import Path
from typing import Any

import orjson
import pytest

from inferplane.ledger.spool import SpoolAppender, decode, is_final, segments
from inferplane.ledger.usage import ROW_FIELDS, UsageRecord
from tests.full_disk import files_limited_to
from tests.ledger.conftest import RecordFactory


def _rows(path: Path) -> list[Any]:
    return [row for line in path.read_bytes().splitlines() for row in decode(line)[1]]


def test_rows_are_appended_as_json_lines_to_a_locked_segment(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    spool = SpoolAppender(tmp_path, "gateway-0")
    spool.open()
    records = [make_record(f"r{i}") for i in range(3)]
    spool.append([record.to_row() for record in records[:2]])
    spool.append([])
    spool.append([records[2].to_row()])
    [segment] = segments(tmp_path)
    assert segment == spool.path and segment.name.startswith("gateway-0.")
    assert len(segment.read_bytes().splitlines()) == 2  # a line per batch
    assert [UsageRecord(*row) for row in _rows(segment)] == records
    assert not is_final(segment)
    spool.close()
    assert is_final(segment)


def test_a_full_segment_becomes_final_and_a_new_one_takes_over(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    spool = SpoolAppender(tmp_path, "gateway-1", max_bytes=1)
    spool.open()
    first = spool.path
    spool.append([make_record("a").to_row()])
    spool.append([make_record("b").to_row()])
    found = segments(tmp_path)
    assert len(found) == 3 and found[0] == first and found[-1] == spool.path
    assert [is_final(path) for path in found] == [True, True, False]
    assert [row[1] for path in found for row in _rows(path)] == ["a", "b"]
    spool.close()


def test_each_start_opens_a_new_segment(tmp_path: Path) -> None:
    for _ in range(2):
        spool = SpoolAppender(tmp_path, "gateway-0")
        spool.open()
        spool.close()
    assert len(segments(tmp_path)) == 2
    assert not list(tmp_path.glob(".*"))  # no half-made segment is left behind


def test_appending_to_a_closed_spool_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        SpoolAppender(tmp_path, "gateway-0").append([("x",)])


def test_a_line_holding_one_record_reads_as_one_row(make_record: RecordFactory) -> None:
    record = make_record("alone", ttft_s=None)
    columns, rows = decode(orjson.dumps(record.to_dict()))
    assert columns == ROW_FIELDS and rows == [record.to_row()]


@pytest.mark.parametrize(
    "line",
    [
        b"[1, 2]",
        b'{"columns": ["request_id", "time"], "rows": [["a"]]}',
        b'{"request_id": "a"}',
        b'{"torn',
    ],
)
def test_a_line_that_is_not_records_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        decode(line)


def test_a_write_the_disk_refuses_leaves_only_whole_lines(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    spool = SpoolAppender(tmp_path, "gateway-0")
    spool.open()
    assert spool.path is not None
    spool.append([make_record("kept").to_row()])
    size = spool.path.stat().st_size
    with files_limited_to(size + 40), pytest.raises(OSError, match="too large"):
        spool.append([make_record(f"cut-{i}").to_row() for i in range(3)])  # 40 bytes fit
    assert spool.path.stat().st_size == size  # the part that fitted is taken back
    spool.append([make_record("after").to_row()])  # room again
    assert [row[1] for row in _rows(spool.path)] == ["kept", "after"]
    spool.close()
