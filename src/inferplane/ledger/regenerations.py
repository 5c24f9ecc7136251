"""Regenerations, found by the ledger writer: the same request body sent again soon by the same
key and user is a rejection of the first answer.

The gateway puts a digest of each request's body in its usage record (`prompt_digest`, a
CRC-32 and the length: about a third of a microsecond for a 1 KB body, and stable across
processes, which Python's own hash() of bytes is not). The writer, which reads the spool
segments of every gateway worker, passes each batch of usage rows through a
`RegenerationFinder`, so a user whose second try lands on another worker is still seen, and
nothing of it runs or is remembered on the request path.

An event is about the earlier request and names the later one in its id
(`{earlier}:regeneration:{later}`), so a writer that re-reads a segment after a restart stores
nothing twice. Rows can reach the writer out of order (two workers' segments are read one
after the other): whichever of the two started first is the one regenerated. The finder keeps
the last request of each (key, user, body) for REGENERATION_WINDOW_S of record time.
"""

import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from inferplane.ledger.feedback import FEEDBACK_FIELDS

REGENERATION_WINDOW_S = 300.0  # the same body again within this is a regeneration
Row = Sequence[Any]


def prompt_digest(body: bytes) -> str:
    """What a usage record keeps of a request's body: equal bodies give equal digests."""
    return f"{zlib.crc32(body):08x}{len(body):x}"


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
    """Regenerations among usage rows, fed batch by batch in any order of segments."""

    def __init__(self, window_s: float = REGENERATION_WINDOW_S) -> None:
        self.window_s = window_s
        self._last: dict[tuple[str, str, str], _Seen] = {}  # oldest first (re-put on update)
        self._newest = 0.0

    def find(self, columns: Sequence[str], rows: Sequence[Row]) -> list[Regeneration]:
        """The regenerations these usage rows reveal (against each other and earlier ones)."""
        if "prompt_hash" not in columns:
            return []
        kept = [columns.index(name) for name in _Seen._fields]
        digest_at, kind_at = columns.index("prompt_hash"), columns.index("kind")
        found: list[Regeneration] = []
        for row in rows:
            digest = row[digest_at]
            if not digest or row[kind_at] != "request":
                continue
            seen = _Seen(*(row[index] for index in kept))
            event = self._note((seen.key, seen.user_hash, digest), seen)
            if event is not None:
                found.append(event)
        self._forget_old()
        return found

    def _note(self, identity: tuple[str, str, str], seen: _Seen) -> Regeneration | None:
        earlier = self._last.get(identity)
        self._newest = max(self._newest, seen.time)
        if earlier is not None and earlier.request_id == seen.request_id:
            return None  # the same record read again (a writer re-reads after a failure)
        if earlier is None or abs(seen.time - earlier.time) > self.window_s:
            self._put(identity, seen)
            return None
        if seen.time >= earlier.time:
            self._put(identity, seen)
            return _event(earlier, later=seen)
        return _event(seen, later=earlier)  # read out of order: the new row came first

    def _put(self, identity: tuple[str, str, str], seen: _Seen) -> None:
        self._last.pop(identity, None)  # to the end: the dict stays oldest first
        self._last[identity] = seen

    def _forget_old(self) -> None:
        horizon = self._newest - self.window_s
        stale = []
        for identity, seen in self._last.items():
            if seen.time >= horizon:
                break
            stale.append(identity)
        for identity in stale:
            del self._last[identity]

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
