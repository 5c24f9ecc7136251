"""Regenerations, found by the ledger writer: the same request body sent again soon by the same
key and user is a rejection of the first answer.

The gateway puts a digest of each request's body in its usage record (`prompt_digest`: the
CRC-32 and the length in one integer, a quarter of a microsecond for a short body, and stable
across processes, which Python's own hash() of bytes is not). The writer, which reads the spool
segments of every gateway worker, passes each batch of usage rows through a
`RegenerationFinder`, so a user whose second try lands on another worker is still seen, and
nothing of it runs or is remembered on the request path.

An event is about the earlier request and names the later one in its id
(`{earlier}:regeneration:{later}`), so a writer that re-reads a segment after a restart stores
nothing twice. Rows can reach the writer out of order (two workers' segments are read one
after the other): whichever of the two started first is the one regenerated. The finder keeps
the last request of each (key, user, body) for REGENERATION_WINDOW_S of record time, and at
most REMEMBERED of them (a busier service is looked at over a shorter window).
"""

import zlib
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from inferplane.ledger.feedback import FEEDBACK_FIELDS

REGENERATION_WINDOW_S = 300.0  # the same body again within this is a regeneration
REMEMBERED = 200_000  # (key, user, body) kept at most: 5 minutes at about 660 requests/s
_IDENTITY = ("key", "user_hash", "prompt_hash")
Row = Sequence[Any]


def prompt_digest(body: bytes) -> int:
    """What a usage record keeps of a request's body: equal bodies give equal digests. It fits
    a signed 64-bit column (a body is far shorter than 2 GiB)."""
    return zlib.crc32(body) << 31 | len(body)


class _Seen(NamedTuple):
    time: float
    request_id: str
    key: str
    team: str
    user_hash: str
    model: str
    model_version: str
    pool: str


class Regeneration(NamedTuple):
    """One regeneration: the feedback row (FEEDBACK_FIELDS order) and the pool that answered
    the regenerated request (for the gateway's per-pool counts)."""

    row: tuple[Any, ...]
    pool: str


class RegenerationFinder:
    """Regenerations among usage rows, fed batch by batch in any order of segments. It keeps
    the last request of each (key, user, body) seen within the window, at most `remembered`
    of them (about 0.5 KB each): past that, the oldest go first."""

    def __init__(
        self, window_s: float = REGENERATION_WINDOW_S, remembered: int = REMEMBERED
    ) -> None:
        self.window_s = window_s
        self.remembered = remembered
        # (key, user, body) -> _Seen's values as a plain tuple; oldest first (re-put on update)
        self._last: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._newest = 0.0

    def find(self, columns: Sequence[str], rows: Sequence[Row]) -> list[Regeneration]:
        """The regenerations these usage rows reveal (against each other and earlier ones)."""
        if "prompt_hash" not in columns:
            return []
        seen_of = itemgetter(*(columns.index(name) for name in _Seen._fields))
        identity_of = itemgetter(*(columns.index(name) for name in _IDENTITY))
        kind_at = columns.index("kind")
        last, window = self._last, self.window_s
        found: list[Regeneration] = []
        newest = self._newest
        for row in rows:
            identity = identity_of(row)
            if not identity[2] or row[kind_at] != "request":
                continue
            seen = seen_of(row)  # a plain tuple in _Seen's order: a _Seen only for an event
            time = seen[0]
            newest = time if time > newest else newest
            earlier = last.get(identity)
            if earlier is None or abs(time - earlier[0]) > window:
                last.pop(identity, None)  # to the end: the dict stays oldest first
                last[identity] = seen
            elif earlier[1] == seen[1]:
                continue  # the same record read again (a writer re-reads after a failure)
            elif time >= earlier[0]:
                del last[identity]
                last[identity] = seen
                found.append(_event(_Seen._make(earlier), later=_Seen._make(seen)))
            else:  # read out of order (another worker's segment): the new row came first
                found.append(_event(_Seen._make(seen), later=_Seen._make(earlier)))
        self._newest = newest
        self._forget_old()
        return found

    def _forget_old(self) -> None:
        horizon = self._newest - self.window_s
        last = self._last
        excess = len(last) - self.remembered
        stale: list[tuple[str, str, int]] = []
        for identity, seen in last.items():
            if seen[0] >= horizon and len(stale) >= excess:
                break
            stale.append(identity)
        for identity in stale:
            del last[identity]

    def __len__(self) -> int:
        return len(self._last)


def _event(earlier: _Seen, later: _Seen) -> Regeneration:
    values = {
        "feedback_id": f"{earlier.request_id}:regeneration:{later.request_id}",
        "time": later.time,
        "request_id": earlier.request_id,
        "kind": "regeneration",
        "value": 1.0,
        "key": earlier.key,
        "team": earlier.team,
        "user_hash": earlier.user_hash,
        "model": earlier.model,
        "model_version": earlier.model_version,
        "text": "",
    }
    return Regeneration(tuple(values[name] for name in FEEDBACK_FIELDS), earlier.pool)
