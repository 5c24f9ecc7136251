"""The ledger writer: stores what the gateways' spools hold, from a process of its own.

The gateway prices its requests and appends the records to its spool (ledger/spool.py), and
that is all: the SQL, and the GIL it would hold, stay out of the request path's process. The
writer tails every segment in the spool folder: it reads the complete lines past its place,
fsyncs the segment (a power cut then loses at most what was not yet synced), inserts the rows
in batches (the driver's executemany of plain rows, idempotent by request id) and deletes a
final segment once all of it is stored. Reading every worker's usage rows, it is also where
regenerations are found (ledger/regenerations.py) and stored as feedback.

Nothing is lost when either process is killed: a record is in its segment before the gateway
moves on, and the writer keeps its place in memory only, so a restarted writer reads every
segment from the start and stores again what was stored already (which changes nothing). A
failed database write is retried the same way. A torn last line of a final segment (its
gateway died in the middle of a write) is skipped with a warning.
"""

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from inferplane.ledger.feedback import FEEDBACK_FIELDS
from inferplane.ledger.regeneration_counts import RegenerationCounts
from inferplane.ledger.regenerations import Regeneration, RegenerationFinder
from inferplane.ledger.spool import Columns, Row, decode, is_final, segments
from inferplane.ledger.store import UsageStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterConfig:
    spool_dir: Path
    batch_size: int = 2000
    poll_s: float = 0.1
    retry_s: float = 1.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.poll_s <= 0 or self.retry_s <= 0:
            raise ValueError("writer needs batch_size >= 1, poll_s > 0 and retry_s > 0")


@dataclass
class WriterStats:
    written: int = 0  # rows handed to the store (a restart hands some over again)
    segments_done: int = 0
    skipped: int = 0  # lines that were not a record
    failures: int = 0


class _Tail:
    """The writer's place in one segment: an open file and the start of an unfinished line."""

    __slots__ = ("file", "rest")

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.rest = b""


class LedgerWriter:
    """Tails a spool folder into a UsageStore; drain() is one pass, run() loops until told."""

    def __init__(self, store: UsageStore, config: WriterConfig) -> None:
        self.store = store
        self.config = config
        self.stats = WriterStats()
        self._tails: dict[Path, _Tail] = {}
        self.regenerations = RegenerationFinder()
        self.regeneration_counts = RegenerationCounts(config.spool_dir)

    def drain(self) -> int:
        """Store what every segment holds now; remove the final ones. Returns rows stored."""
        self.store.open()
        present = segments(self.config.spool_dir)
        for gone in self._tails.keys() - set(present):  # removed by another writer
            self._forget(gone)
        return sum(self._drain_segment(path) for path in present)

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Drain until should_stop() says so, then once more: what was appended last is kept."""
        while not should_stop():
            try:
                stored = self.drain()
            except Exception:  # the database is down or refused: the spool keeps everything
                self._failed()
                self._sleep(self.config.retry_s, should_stop)
                continue
            if not stored:
                self._sleep(self.config.poll_s, should_stop)
        try:
            self.drain()
        except Exception:  # the next writer stores it
            self._failed()

    def close(self) -> None:
        for path in list(self._tails):
            self._forget(path)

    def _drain_segment(self, path: Path) -> int:
        final = is_final(path)  # before reading: whatever was written by then is read now
        tail = self._tails.get(path)
        if tail is None:
            try:
                tail = self._tails[path] = _Tail(path.open("rb"))
            except FileNotFoundError:
                return 0
        data = tail.rest + tail.file.read()
        cut = data.rfind(b"\n") + 1
        lines, tail.rest = data[:cut], data[cut:]
        stored = self._store(lines, tail.file) if lines else 0
        if final:
            self._finish(path, tail)
        return stored

    def _store(self, lines: bytes, file: BinaryIO) -> int:
        batches: dict[Columns, list[Row]] = {}
        for line in lines.splitlines():
            for columns, rows in self._parse(line):
                batches.setdefault(columns, []).extend(rows)
        found = self._find_regenerations(batches)
        with contextlib.suppress(OSError):
            os.fsync(file.fileno())
        size = self.config.batch_size
        stored = 0
        for columns, rows in batches.items():
            for start in range(0, len(rows), size):
                self.store.write_rows(columns, rows[start : start + size])
            stored += len(rows)
        self.stats.written += stored
        if self.regeneration_counts.add(found):  # stored: the gateway may count them now
            self.regeneration_counts.save()
        return stored

    def _find_regenerations(self, batches: dict[Columns, list[Row]]) -> list[Regeneration]:
        """Regenerations among the batches' usage rows, added to the batches as feedback."""
        found = [
            event
            for columns, rows in batches.items()
            for event in self.regenerations.find(columns, rows)
        ]
        if found:
            batches.setdefault(FEEDBACK_FIELDS, []).extend(event.row for event in found)
        return found

    def _parse(self, line: bytes) -> list[tuple[Columns, list[Row]]]:
        try:
            return [decode(line)]
        except ValueError as error:
            self.stats.skipped += 1
            log.warning("spool line skipped (%s): %r", error, line[:200])
            return []

    def _finish(self, path: Path, tail: _Tail) -> None:
        if tail.rest:
            self.stats.skipped += 1
            log.warning("spool %s ends in a torn line (%d bytes): skipped", path, len(tail.rest))
        self._forget(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.stats.segments_done += 1

    def _forget(self, path: Path) -> None:
        tail = self._tails.pop(path, None)
        if tail is not None:
            tail.file.close()

    def _failed(self) -> None:
        self.stats.failures += 1
        log.exception("ledger write failed; the records stay in the spool")
        self.close()  # read every segment from its start next time: stored rows are no-ops

    @staticmethod
    def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(min(0.05, seconds))
