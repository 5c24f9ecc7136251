"""The ledger writer as a real child process: it stores what a spool holds, a SIGKILL of it
loses nothing (it is restarted and reads the spool again), and it leaves with its parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inferplane.ledger.spool import SpoolAppender, segments
from inferplane.ledger.store import UsageStore
from inferplane.ledger.usage import UsageRecord
from inferplane.ledger.writer_process import WriterProcess, catch_up

pytestmark = pytest.mark.timeout(60)


def _row(request_id: str) -> tuple[object, ...]:
    return UsageRecord(1.0, request_id, "m", "p", "p-0", "L4", 0.1, 12).to_row()


def _count(url: str) -> int:
    with UsageStore(url) as store:
        return store.count()


def _wait(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sigkill_of_the_writer_mid_stream_loses_nothing(store_url: str, tmp_path: Path) -> None:
    spool = SpoolAppender(tmp_path / "spool", "gateway-0", max_bytes=32 * 1024)
    spool.open()
    writer = WriterProcess(store_url, tmp_path / "spool")
    writer.start()
    sent = 0

    def send(batches: int) -> None:
        nonlocal sent
        for _ in range(batches):
            spool.append([_row(f"r{sent + i}") for i in range(20)])
            sent += 20
            time.sleep(0.002)

    try:
        send(100)
        _wait(lambda: _count(store_url) > 0)  # it is storing: kill it in the middle
        first = writer.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        send(100)
        _wait(lambda: writer.pid != first)  # the watcher started another
        send(100)
    finally:
        spool.close()
        writer.stop()
    assert writer.restarts == 1
    assert sent == 6000
    assert _count(store_url) == sent
    assert segments(tmp_path / "spool") == []


def test_catch_up_stores_what_an_earlier_run_left(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spool = SpoolAppender(tmp_path, "gateway-0")
    spool.open()
    spool.append([_row(f"r{i}") for i in range(5)])
    spool.close()
    assert catch_up(url, tmp_path) == 5
    assert _count(url) == 5
    assert catch_up(url, tmp_path) == 0


PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from inferplane.ledger.writer_process import WriterProcess

    writer = WriterProcess(sys.argv[1], Path(sys.argv[2]))
    writer.start()
    print(writer.pid, flush=True)
    time.sleep(60)
    """
)


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def test_the_writer_leaves_when_its_parent_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, url, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    writer_pid = int(parent.stdout.readline())
    spool = SpoolAppender(tmp_path, "gateway-0")
    spool.open()
    spool.append([_row("last")])
    spool.close()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    _wait(lambda: _gone(writer_pid))
    assert _count(url) == 1  # it stored what was spooled before it left


def test_a_group_wide_sigterm_stops_the_writer_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A supervisor's SIGTERM to the whole process group reaches the writer before the
    gateway's own stop(): that is a stop, not a crash to restart and report."""
    writer = WriterProcess(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "spool")
    writer.start()
    pid = writer.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.7)  # it leaves, and the watcher (polling every 0.5 s) sees it; then stop()
    writer.stop()
    assert writer.restarts == 0 and writer.pid == pid
    assert "restarting" not in caplog.text
