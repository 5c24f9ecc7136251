import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from inferplane.ledger.regeneration_counts import RegenerationEcho
from inferplane.ledger.regenerations import prompt_digest
from inferplane.ledger.spool import SpoolAppender, encode, segments
from inferplane.ledger.store import UsageStore
from inferplane.ledger.writer import LedgerWriter, WriterConfig
from tests.ledger.conftest import RecordFactory


def _writer(url: str, folder: Path, **config: float) -> LedgerWriter:
    return LedgerWriter(UsageStore(url), WriterConfig(folder, **config))  # type: ignore[arg-type]


def _spool(folder: Path, max_bytes: int = 1 << 20) -> SpoolAppender:
    spool = SpoolAppender(folder, "gateway-0", max_bytes)
    spool.open()
    return spool


def test_stores_every_segment_and_removes_the_final_ones(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    spool = _spool(tmp_path, max_bytes=20_000)
    for batch in range(20):
        spool.append([make_record(f"r{batch}-{i}").to_row() for i in range(50)])
    writer = _writer(store_url, tmp_path, batch_size=64)
    assert writer.drain() == 1000
    assert writer.store.count() == 1000
    assert segments(tmp_path) == [spool.path]  # only the live one is left
    spool.append([make_record("late").to_row()])
    spool.close()
    assert writer.drain() == 1
    assert writer.store.count() == 1001
    assert segments(tmp_path) == []
    writer.close()
    writer.store.close()


def test_a_line_being_written_waits_for_its_end(tmp_path: Path, make_record: RecordFactory) -> None:
    spool = _spool(tmp_path)
    spool.append([make_record("whole").to_row()])
    assert spool.path is not None
    line = encode([make_record("torn").to_row()])
    with spool.path.open("ab") as other:  # the second half of a write not yet there
        other.write(line[:40])
        other.flush()
        writer = _writer(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
        assert writer.drain() == 1
        other.write(line[40:])
    assert writer.drain() == 1
    assert {r.request_id for r in writer.store.records()} == {"whole", "torn"}
    spool.close()
    writer.close()


def test_a_torn_last_line_of_a_final_segment_is_skipped(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    lines = b"".join(orjson.dumps(make_record(f"r{i}").to_dict()) + b"\n" for i in range(3))
    (tmp_path / "gateway-0.spool").write_bytes(lines + b'{"torn')  # a crash mid-write
    writer = _writer(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    assert writer.drain() == 3
    assert writer.stats.skipped == 1 and writer.stats.segments_done == 1
    assert segments(tmp_path) == []


def test_a_restarted_writer_stores_nothing_twice(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    spool = _spool(tmp_path)
    spool.append([make_record(f"r{i}").to_row() for i in range(10)])
    spool.append([make_record("r3").to_row()])  # the same id again (a replay)
    for _ in range(2):  # the second writer reads the live segment from its start
        writer = _writer(store_url, tmp_path)
        writer.drain()
        writer.close()
        assert writer.store.count() == 10
        writer.store.close()
    spool.close()


def test_a_failing_database_is_retried_from_the_spool(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    writer = _writer(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, retry_s=0.05, poll_s=0.01)
    store = writer.store.open()
    store.table.drop(store.engine)  # every insert now fails
    spool = _spool(tmp_path)
    spool.append([make_record(f"r{i}").to_row() for i in range(20)])
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop.is_set,))
    thread.start()
    try:
        _wait(lambda: writer.stats.failures > 0)
        store.table.create(store.engine)
        _wait(lambda: store.count() == 20)
    finally:
        spool.close()
        stop.set()
        thread.join(10)
    assert segments(tmp_path) == []
    writer.close()


def _wait(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from inferplane.ledger.spool import SpoolAppender

    folder = Path(sys.argv[1])
    spool = SpoolAppender(folder, "gateway-0", max_bytes=64 * 1024)
    spool.open()
    for batch in range(100_000):
        spool.append([(1.0, f"r{batch}-{i}", "m", "p", "p-0", "L4", 0.1, 12, "request", "k",
                       "t", "", "", 1, 0, 1, None, 0.1, "ok", None, None, None) for i in range(10)])
        print((batch + 1) * 10, flush=True)
    """
)


@pytest.mark.timeout(60)
def test_sigkill_of_the_gateway_loses_no_appended_record(store_url: str, tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    reported = [int(child.stdout.readline()) for _ in range(300)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    writer = _writer(store_url, tmp_path)
    writer.drain()
    assert writer.store.count() >= reported[-1] == 3000
    assert segments(tmp_path) == []  # the dead process's segments are final
    writer.store.close()


def test_regenerations_across_workers_segments_are_stored_and_counted(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    digest = prompt_digest(b'{"model": "chat"}')
    echo = RegenerationEcho(tmp_path)
    for worker, (request_id, start) in enumerate((("first", 100.0), ("again", 130.0))):
        spool = SpoolAppender(tmp_path, f"gateway-{worker}")
        spool.open()
        record = make_record(request_id, time=start, user_hash="u1", prompt_hash=digest)
        spool.append([record.to_row(), make_record(f"{request_id}-other", time=start).to_row()])
        spool.close()
    writer = _writer(store_url, tmp_path)
    writer.drain()
    (event,) = writer.store.feedback()
    assert (event.feedback_id, event.request_id, event.kind) == (
        "first:regeneration:again", "first", "regeneration",
    )  # fmt: skip
    assert echo.news() == [(("chat-small", "", "chat-primary"), 1)]
    writer.close()
    writer.store.close()
