import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from inferplane.ledger.store import UsageStore
from inferplane.ledger.writer import LedgerWriter, WriterConfig
from tests.ledger.conftest import RecordFactory


def _wait_for(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_batches_everything_into_the_store(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    store = UsageStore(store_url)
    writer = LedgerWriter(store, WriterConfig(tmp_path / "spool.jsonl", batch_size=50))
    writer.start()
    for i in range(1000):
        writer.submit(make_record(f"r{i}", time=float(i)))
    writer.close()
    assert store.count() == 1000
    assert writer.stats.written == 1000
    assert (tmp_path / "spool.jsonl").stat().st_size == 0
    store.close()


def test_a_full_queue_loses_nothing(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    store = UsageStore(store_url)
    config = WriterConfig(tmp_path / "spool.jsonl", max_queue=4, batch_size=2)
    writer = LedgerWriter(store, config)
    writer.start()
    for i in range(300):
        writer.submit(make_record(f"r{i}"))
    writer.close()
    assert writer.stats.overflowed > 0
    assert store.count() == 300
    store.close()


def test_a_failing_database_is_retried_from_the_spool(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    store = UsageStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    writer = LedgerWriter(store, WriterConfig(tmp_path / "spool.jsonl", retry_s=0.05))
    writer.start()
    store.table.drop(store.engine)  # every insert now fails
    for i in range(20):
        writer.submit(make_record(f"r{i}"))
    _wait_for(lambda: writer.stats.failures > 0)
    store.table.create(store.engine)
    _wait_for(lambda: store.count() == 20)
    writer.close()
    store.close()


def test_start_replays_a_spool(tmp_path: Path, make_record: RecordFactory) -> None:
    spool = tmp_path / "spool.jsonl"
    lines = [make_record(f"r{i}").to_dict() for i in range(3)]
    spool.write_text("".join(f"{json.dumps(line)}\n" for line in lines) + '{"torn')
    store = UsageStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    writer = LedgerWriter(store, WriterConfig(spool))
    writer.start()
    writer.close()
    assert store.count() == 3
    assert writer.stats.replayed == 3
    store.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from inferplane.ledger.store import UsageStore
    from inferplane.ledger.usage import UsageRecord
    from inferplane.ledger.writer import LedgerWriter, WriterConfig

    db, spool, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    writer = LedgerWriter(UsageStore(db), WriterConfig(spool, batch_size=16))
    writer.start()
    for i in range(count):
        writer.submit(UsageRecord(time=float(i), request_id=f"r{i}", model="m", pool="p",
                                  replica="p-0", gpu_type="L4", gpu_seconds=0.1,
                                  cost_micro_usd=12))
        if i % 100 == 99:
            print(i + 1, flush=True)
    print("done", flush=True)
    time.sleep(60)
    """
)


def _spawn(db_url: str, spool: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, str(spool), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _recover(db_url: str, spool: Path) -> int:
    store = UsageStore(db_url)
    writer = LedgerWriter(store, WriterConfig(spool))
    writer.start()
    writer.close()
    count = store.count()
    store.close()
    return count


@pytest.mark.timeout(60)
def test_sigkill_loses_no_record_while_the_database_is_locked(tmp_path: Path) -> None:
    db_url, spool = f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "spool.jsonl"
    UsageStore(db_url).open().close()
    blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the child's writes cannot land
    child = _spawn(db_url, spool, 500)
    assert child.stdout is not None
    while child.stdout.readline().strip() != "done":
        pass
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert UsageStore(db_url).open().count() == 0  # nothing had reached the database
    assert spool.stat().st_size > 0
    assert _recover(db_url, spool) == 500


@pytest.mark.timeout(60)
def test_sigkill_mid_stream_loses_no_submitted_record(store_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    child = _spawn(store_url, spool, 100_000)
    assert child.stdout is not None
    reported = [int(child.stdout.readline()) for _ in range(20)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert _recover(store_url, spool) >= reported[-1] == 2000
