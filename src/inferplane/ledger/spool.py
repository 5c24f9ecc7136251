"""The spool: usage records on disk, from the gateway that priced them to the ledger writer.

Each gateway worker appends to a segment file of its own, one line and one write() per batch,
so a record is in the kernel's hands before the worker moves on: a SIGKILL of the gateway
loses nothing that reached the spool. A line is one JSON object that names its columns once,
{"columns": [...], "rows": [[...], ...]}: one orjson call per batch, several times cheaper
than a line per record (a record alone, such as UsageRecord.to_dict() gives, is read too).

The worker holds an exclusive flock on its live segment (taken before the file gets its name,
so no one ever sees it unlocked) and starts a new segment at each start and past `max_bytes`.
A segment no process holds is final: nothing will be added to it.

The ledger writer (ledger/writer.py, a process of its own) tails every segment in the folder,
stores complete lines and deletes a final segment once all of it is stored; see there for the
reading side's guarantees.
"""

import contextlib
import fcntl
import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from inferplane.ledger.usage import ROW_FIELDS, row_from_dict

SUFFIX = ".spool"
MAX_SEGMENT_BYTES = 8 << 20  # a restarted writer re-reads at most this much per live segment
Row = Sequence[Any]
Columns = tuple[str, ...]


def encode(rows: Sequence[Row], columns: Columns = ROW_FIELDS) -> bytes:
    """One spool line holding a batch of rows (each in `columns` order)."""
    return b'{"columns":%s,"rows":%s}\n' % (orjson.dumps(columns), orjson.dumps(rows))


def decode(line: bytes) -> tuple[Columns, list[Row]]:
    """A spool line's columns and rows; ValueError when it is neither a batch nor a record."""
    data = orjson.loads(line)  # JSONDecodeError is a ValueError
    if isinstance(data, dict) and "rows" in data:
        columns, rows = data.get("columns"), data["rows"]
        if not isinstance(columns, list) or not isinstance(rows, list):
            raise ValueError("a batch needs a list of columns and a list of rows")
        width = len(columns)
        if any(not isinstance(row, list) or len(row) != width for row in rows):
            raise ValueError(f"a row of a batch does not have its {width} columns")
        return tuple(columns), rows
    if isinstance(data, dict):
        try:
            return ROW_FIELDS, [row_from_dict(data)]
        except KeyError as missing:
            raise ValueError(f"a record without {missing}") from None
    raise ValueError("not a usage record")


class SpoolAppender:
    """One gateway worker's side of the spool: appends to a locked segment of its own."""

    def __init__(
        self,
        folder: Path,
        name: str,
        max_bytes: int = MAX_SEGMENT_BYTES,
        columns: Columns = ROW_FIELDS,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("a spool segment needs max_bytes >= 1")
        self.columns = columns
        self.folder = folder
        self.name = name
        self.max_bytes = max_bytes
        self.path: Path | None = None
        self._fd: int | None = None
        self._size = 0
        self._serial = itertools.count()

    def open(self) -> None:
        """Start a new segment (a segment left by an earlier run is the writer's to finish)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._roll()

    def append(self, rows: Sequence[Row]) -> None:
        """Append rows (in `columns` order) as one line in one write() call; a new segment
        follows once this one is full. A write that fails (a full disk) raises OSError and
        leaves the segment as it was: a part of the line written would run into the next."""
        if not rows:
            return
        data = encode(rows, self.columns)
        fd = self._require_fd()
        try:
            written = os.write(fd, data)
            while written < len(data):  # a regular file takes it all at once, unless full
                written += os.write(fd, data[written:])
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)  # the segment's complete lines only
            raise
        self._size += len(data)
        if self._size >= self.max_bytes:
            self._roll()

    def close(self) -> None:
        """Close the segment: it is final now, and the writer stores and removes it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _require_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"the spool {self.name} in {self.folder} is not open")
        return self._fd

    def _roll(self) -> None:
        stamp = f"{time.time_ns():020d}-{os.getpid()}-{next(self._serial)}"
        path = self.folder / f"{self.name}.{stamp}{SUFFIX}"
        hidden = self.folder / f".{path.name}.new"  # not yet a segment: the writer skips it
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(hidden, path)  # the lock goes with the file: never seen unlocked
        self.close()  # the previous segment, if any, becomes final only now
        self._fd, self.path, self._size = fd, path, 0


def segments(folder: Path) -> list[Path]:
    """The folder's segments, oldest first (a name starts with its worker, then its time)."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{SUFFIX}"), key=lambda path: (_stamp(path), path.name))


def _stamp(path: Path) -> str:
    parts = path.name.split(".")
    return parts[-2] if len(parts) >= 3 else ""  # a legacy NAME.spool sorts first


def is_final(path: Path) -> bool:
    """True when no process holds the segment: it will not grow any more."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing drops the shared lock, if it was taken
    return True
