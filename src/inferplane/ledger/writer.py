"""The ledger writer: takes usage records off the request path and stores them in batches.

submit() appends the record to the spool and puts it on a bounded queue; it never blocks and
never touches the database. A background thread drains the queue in batches into the store.
When the queue is full, or the database fails, the record is still in the spool: the thread
replays the spool once it can, and writes are idempotent by request id, so nothing is stored
twice and nothing is lost.
"""

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inferplane.ledger.spool import Spool
from inferplane.ledger.store import UsageStore
from inferplane.ledger.usage import UsageRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterConfig:
    spool_path: Path
    max_queue: int = 10_000
    batch_size: int = 500
    flush_interval_s: float = 0.2
    retry_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_queue < 1 or self.batch_size < 1 or self.flush_interval_s <= 0:
            raise ValueError("writer needs max_queue >= 1, batch_size >= 1, flush_interval_s > 0")


@dataclass
class WriterStats:
    submitted: int = 0
    written: int = 0
    overflowed: int = 0
    replayed: int = 0
    failures: int = 0


class LedgerWriter:
    """Batches records into a UsageStore from a thread; start() replays what a crash left."""

    def __init__(self, store: UsageStore, config: WriterConfig) -> None:
        self.store = store
        self.config = config
        self.stats = WriterStats()
        self._spool = Spool(config.spool_path)
        self._queue: queue.Queue[UsageRecord] = queue.Queue(maxsize=config.max_queue)
        self._lock = threading.Lock()
        self._needs_replay = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the store and the spool, store what the spool holds, start the thread."""
        self.store.open()
        self._spool.open()
        self._needs_replay = True
        self._replay()
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def submit(self, record: UsageRecord) -> None:
        """Hand a record to the ledger; returns at once (the spool keeps it safe)."""
        self.submit_many((record,))

    def submit_many(self, records: Sequence[UsageRecord]) -> None:
        """Hand records over with one spool write; returns at once."""
        if not records:
            return
        with self._lock:
            self._spool.append(records)
            self.stats.submitted += len(records)
            for record in records:
                try:
                    self._queue.put_nowait(record)
                except queue.Full:
                    self.stats.overflowed += 1
                    self._needs_replay = True

    def close(self, timeout_s: float = 10.0) -> None:
        """Store everything submitted so far, then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._spool.close()

    def backlog(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty() and not self._needs_replay):
            try:
                self._cycle()
            except Exception:  # the database is down or refused: keep the spool, retry later
                self.stats.failures += 1
                self._needs_replay = True
                log.exception("ledger write failed; records stay in the spool")
                if self._stop.is_set():
                    return  # closing: the next start() replays the spool
                self._stop.wait(self.config.retry_s)

    def _cycle(self) -> None:
        if self._needs_replay:
            self._replay()
            return
        batch = self._next_batch()
        if batch:
            self._spool.sync()
            self.store.write(batch)
            self.stats.written += len(batch)
            self._compact()

    def _next_batch(self) -> list[UsageRecord]:
        try:
            batch = [self._queue.get(timeout=self.config.flush_interval_s)]
        except queue.Empty:
            return []
        while len(batch) < self.config.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _replay(self) -> None:
        with self._lock:
            records = self._spool.read()
            self._needs_replay = False
            self._drain_queue()  # what is queued is in the spool too
        try:
            for start in range(0, len(records), self.config.batch_size):
                self.store.write(records[start : start + self.config.batch_size])
        except Exception:
            self._needs_replay = True
            raise
        self.stats.replayed += len(records)
        self._compact()

    def _drain_queue(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _compact(self) -> None:
        # Everything in the spool is stored once the queue is empty and no replay is due;
        # holding the lock keeps submit() from appending in between.
        with self._lock:
            if self._queue.empty() and not self._needs_replay and self._spool.size():
                self._spool.clear()
