"""The numbers every worker of one gateway shares, as nginx's limit_req zone does: each key's
rate-limit buckets (admission/limits.py) and each budget's tally (ledger/budgets.py).

With `--workers N` the kernel spreads connections over N processes; numbers of their own would
let a key through N times its limits and spend a budget N times over. The zone is two arrays in
shared memory, made by the parent before it starts the workers and handed to each: a table of
slots, each a stable hash of a name and kind (0 for a free slot) and three numbers (a bucket's
per minute, level and stamp; a tally's period start, spend and reservations), behind one lock
that every admission of a limited key or budgeted request holds for its few reads and writes.
A name finds its slot by linear probing from its hash, once per process; a full table (more
than ZONE_SLOTS names and kinds) leaves the rest per worker, said in the log. The buckets'
clock is the host's monotonic clock, the same in every worker."""

import hashlib
import logging
import multiprocessing.context
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

log = logging.getLogger(__name__)
ZONE_SLOTS = 4096
CELLS = 3  # per slot: per_minute, level, stamp
if TYPE_CHECKING:  # memoryview takes no subscript at run time before Python 3.14
    Cells = list[float] | memoryview[float]  # a bucket's numbers: its own list, or the zone


@dataclass
class LimitsZone:
    """What the parent makes and every worker receives (shared ctypes arrays and a lock
    pickle into a spawned worker's arguments)."""

    hashes: Any  # RawArray("q", slots)
    cells: Any  # RawArray("d", CELLS * slots)
    lock: Any  # a multiprocessing Lock

    @classmethod
    def create(
        cls, context: multiprocessing.context.BaseContext, slots: int = ZONE_SLOTS
    ) -> "LimitsZone":
        return cls(
            context.RawArray("q", slots), context.RawArray("d", CELLS * slots), context.Lock()
        )

    def attach(self) -> "ZoneView":
        return ZoneView(self)


class ZoneView:
    """One worker's handle on the zone: fast views of the arrays, and the slots it found."""

    def __init__(self, zone: LimitsZone) -> None:
        self.lock = zone.lock
        self.hashes = memoryview(zone.hashes).cast("B").cast("q")
        self.cells: memoryview[float] = memoryview(zone.cells).cast("B").cast("d")
        self._found: dict[tuple[str, str], int] = {}
        self._warned = False

    def slot(self, name: str, kind: str) -> int | None:
        """The cells' offset of a key's bucket of a kind (claimed if new; call holding the
        lock), or None when the table is full."""
        found = self._found.get((name, kind))
        if found is None:
            found = self._claim(name, kind)
            if found is None:
                return None
            self._found[(name, kind)] = found
        return found

    def _claim(self, name: str, kind: str) -> int | None:
        wanted = stable_hash(name, kind)
        size = len(self.hashes)
        start = wanted % size
        for step in range(size):
            index = (start + step) % size
            held = self.hashes[index]
            if held == wanted:
                return CELLS * index
            if held == 0:
                self.hashes[index] = wanted
                self.cells[CELLS * index] = -1.0  # no limit yet: the first bucket sets it
                return CELLS * index
        if not self._warned:
            log.warning("limits zone full (%d slots): further keys and budgets per worker", size)
            self._warned = True
        return None


def stable_hash(name: str, kind: str) -> int:
    """The same nonzero 63-bit number in every process (str's hash() is salted per process)."""
    digest = hashlib.blake2b(f"{kind}\0{name}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 1) or 1
