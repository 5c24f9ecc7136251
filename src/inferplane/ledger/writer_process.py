"""The ledger writer as a child process of the gateway, watched over and restarted.

`inferplane gateway` starts one for all its workers: the workers only append to the spool,
and this process does the SQL (ledger/writer.py). Before it starts, catch_up() stores what
earlier runs left in the spool, so that budgets are seeded from a complete ledger. A watcher
thread restarts the process if it dies (a restart re-reads the spool: nothing is lost); stop()
asks it to store the last records and waits. The process leaves on SIGTERM, or by itself
once its parent is gone; it ignores SIGINT, which a terminal sends to the whole group, so
that it still stores what the gateway appends while it shuts down.
"""

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from inferplane.ledger.store import UsageStore
from inferplane.ledger.writer import LedgerWriter, WriterConfig
from inferplane.telemetry.logging import configure_logging

log = logging.getLogger(__name__)
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 30.0


def catch_up(url: str, spool_dir: Path) -> int:
    """Store, in this process, everything the spool holds now; returns the rows stored."""
    store = UsageStore(url)
    writer = LedgerWriter(store, WriterConfig(spool_dir))
    try:
        return writer.drain()
    finally:
        writer.close()
        store.close()


def writer_main(url: str, spool_dir: str, parent_pid: int, log_level: str = "warning") -> None:
    """The process's body: tail the spool into the store until SIGTERM or the parent's end."""
    configure_logging(json=True, level=log_level)
    stopping = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked since _spawn
    store = UsageStore(url)
    writer = LedgerWriter(store, WriterConfig(Path(spool_dir)))
    try:
        writer.run(lambda: stopping.is_set() or os.getppid() != parent_pid)
    finally:
        writer.close()
        store.close()


class WriterProcess:
    """One ledger writer process, restarted by a watcher thread until stop()."""

    def __init__(self, url: str, spool_dir: Path, log_level: str = "warning") -> None:
        self.url = url
        self.spool_dir = spool_dir
        self.log_level = log_level
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="ledger-watch", daemon=True)
        self._watcher.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Let the writer store what is spooled (SIGTERM), and wait for it."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()
        process.join(timeout_s)
        if process.is_alive():
            log.warning(
                "the ledger writer did not stop in %.0fs; the spool keeps the rest", timeout_s
            )
            process.kill()
            process.join()

    def _spawn(self) -> None:
        self._process = self._context.Process(
            target=writer_main,
            args=(self.url, str(self.spool_dir), os.getpid(), self.log_level),
            name="ledger-writer",
        )
        # The child starts with SIGTERM blocked (the mask is inherited) and unblocks it once
        # its handler is in place: a stop() during its start is then a stop, not a kill.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            process.join(0.5)
            if process.is_alive() or self._stopping.is_set():
                continue
            # A supervisor stopping the whole process group (systemd, `kill -TERM -PGID`)
            # stops the writer first: within the delay the gateway's stop() comes too, and
            # then nothing restarts and nothing is said.
            if self._stopping.wait(RESTART_DELAY_S):
                return
            log.warning("the ledger writer exited (%s); restarting it", process.exitcode)
            self.restarts += 1
            self._spawn()
