"""The spool: an append-only JSON-lines file holding every record not yet known to be stored.

A record reaches the spool (one write() call, so the kernel holds it) before the request path
moves on; a SIGKILL of the process therefore loses nothing. The writer fsyncs the spool before
each database batch (so a power cut loses at most what was not yet synced) and empties it once
the database has everything in it. At start, the spool is replayed.
"""

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from inferplane.ledger.usage import UsageRecord

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"spool {self.path} is not open")
        return self._fd

    def append(self, records: Sequence[UsageRecord]) -> None:
        """Append records as JSON lines in one write() call."""
        lines = b"".join(orjson.dumps(record.to_dict()) + b"\n" for record in records)
        os.write(self.fd, lines)

    def sync(self) -> None:
        os.fsync(self.fd)

    def clear(self) -> None:
        os.ftruncate(self.fd, 0)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read(self) -> list[UsageRecord]:
        """Every whole record in the spool; a line torn by a crash mid-write is skipped."""
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            try:
                records.append(UsageRecord.from_dict(orjson.loads(line)))
            except (ValueError, TypeError, orjson.JSONDecodeError) as error:
                log.warning("spool %s line %d skipped: %s", self.path, number, error)
        return records
