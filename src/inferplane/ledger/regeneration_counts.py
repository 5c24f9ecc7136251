"""How many regenerations the ledger writer found, per model, version and pool, told back to
the gateway through a small file in the spool folder.

The writer finds regenerations (ledger/regenerations.py) and stores them; the gateway still
needs their counts for its feedback metric and for the rollout gates' negative feedback rate.
The writer keeps running totals in `regenerations.json` beside the segments (rewritten whole,
atomically, after each batch that found some), and one gateway process (`RegenerationEcho`,
the first worker) checks the file as it sweeps its books and counts what grew.

Totals never go down: a restarted writer starts from the file's totals and counts only events
later than what its predecessor had counted (`through`), so re-reading the segments the spool
still holds counts nothing twice; a writer that re-reads after a failed write skips the
events it already counted. A gateway takes the file's totals at its start as counted.
"""

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

import orjson

from inferplane.ledger.feedback import FEEDBACK_FIELDS
from inferplane.ledger.regenerations import REGENERATION_WINDOW_S, Regeneration

ECHO_FILE = "regenerations.json"
Series = tuple[str, str, str]  # model, version, pool
_ID, _TIME = FEEDBACK_FIELDS.index("feedback_id"), FEEDBACK_FIELDS.index("time")
_MODEL, _VERSION = FEEDBACK_FIELDS.index("model"), FEEDBACK_FIELDS.index("model_version")


def read_totals(path: Path) -> tuple[dict[Series, int], float]:
    """The file's totals and the latest event time counted; nothing when there is no file or
    it cannot be read (a writer replaces it whole, so a reader never sees half of one)."""
    try:
        data = orjson.loads(path.read_bytes())
        totals = {(m, v, p): int(n) for m, v, p, n in data["totals"]}
        return totals, float(data["through"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}, 0.0


class RegenerationCounts:
    """The writer's side: running totals, saved to the echo file."""

    def __init__(self, spool_dir: Path) -> None:
        self.path = spool_dir / ECHO_FILE
        self.totals, self.through = read_totals(self.path)
        self._floor = self.through  # what an earlier writer counted already
        self._counted: dict[str, float] = {}  # event id -> time, oldest first

    def add(self, events: Iterable[Regeneration]) -> int:
        """Count events not counted before; how many were new."""
        new = 0
        for event in events:
            event_id, time = event.row[_ID], event.row[_TIME]
            if time <= self._floor or event_id in self._counted:
                continue
            self._counted[event_id] = time
            series = (event.row[_MODEL], event.row[_VERSION], event.pool)
            self.totals[series] = self.totals.get(series, 0) + 1
            self.through = max(self.through, time)
            new += 1
        self._forget_old()
        return new

    def save(self) -> None:
        """Replace the echo file with the totals now (a write that fails is retried next time)."""
        rows = [[*series, count] for series, count in sorted(self.totals.items())]
        data = orjson.dumps({"through": self.through, "totals": rows})
        part = self.path.with_name(f".{ECHO_FILE}.{os.getpid()}")
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(data)
            part.replace(self.path)

    def _forget_old(self) -> None:
        # An event is found again only from rows re-read within the finder's window.
        horizon = self.through - 2 * REGENERATION_WINDOW_S
        stale = []
        for event_id, time in self._counted.items():
            if time >= horizon:
                break
            stale.append(event_id)
        for event_id in stale:
            del self._counted[event_id]


class RegenerationEcho:
    """The gateway's side: what the writer's totals grew by since the last look."""

    def __init__(self, spool_dir: Path) -> None:
        self.path = spool_dir / ECHO_FILE
        self._seen, _ = read_totals(self.path)  # counted before this gateway started

    def news(self) -> list[tuple[Series, int]]:
        """(series, new regenerations) for each series that grew since the last call."""
        totals, _ = read_totals(self.path)  # a few hundred bytes, read every sweep
        seen = self._seen
        grown = [(s, n - seen.get(s, 0)) for s, n in totals.items() if n > seen.get(s, 0)]
        seen.update(totals)
        return grown
