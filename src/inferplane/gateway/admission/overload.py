"""Overload admission: predict when a request could start on each replica, admit it where it
starts within the pool's deadline, else queue it (bounded, best tier first) or refuse it with
the time the pool is predicted to drain.

The prediction uses only what the gateway already tracks per replica: requests it holds (its
own in-flight count; a scraped waiting + running beyond it only adds to the wait), the work they
owe (prompt + max tokens), and the pool's measured prefill speed and seconds per token of
work at a full batch. A replica runs `slots` requests at once (weighted); a request beyond
the pool's slots waits for the work ahead of it to be done at the pool's throughput. The gateway
sends a request on only while a slot is free, so tiers, not the replicas' FIFO queues, order
who goes next under pressure. Pure: no clock is read (times are passed in), no I/O;
one pass over the pool's replicas per decision, with no allocation besides the answer.
"""

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

EWMA_ALPHA = 0.2
Outcome = Literal["admit", "queue", "refuse"]
T = TypeVar("T")


class ReplicaLoad(Protocol):
    """What admission reads of a replica (the registry's Replica and ReplicaSnapshot fit)."""

    @property
    def in_flight(self) -> int: ...
    @property
    def outstanding_work(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def running(self) -> int: ...
    @property
    def weight(self) -> float: ...
    @property
    def routable(self) -> bool: ...


@dataclass
class Rates:
    """A pool's measured speeds: prompt tokens/s to the first token of a request that did not
    wait, and a replica's seconds per token of work (prompt + max tokens) with its batch full:
    a request's duration over its work, divided by the requests it shared the replica with.
    That assumes a replica's throughput stays flat as its batch grows (true of a saturated
    CPU, pessimistic for a GPU): better to refuse early than to admit past the deadline.
    Start from guesses; every finished request refines them."""

    prefill_tps: float = 2000.0
    s_per_work: float = 0.005

    def observe(
        self, work: int, prompt_tokens: int, ttft_s: float | None, total_s: float, sharing: int
    ) -> None:
        if ttft_s is not None and prompt_tokens > 0 and ttft_s > 0:
            self.prefill_tps += EWMA_ALPHA * (prompt_tokens / ttft_s - self.prefill_tps)
        if work > 0 and total_s > 0:
            sample = total_s / (work * max(1, sharing))
            self.s_per_work += EWMA_ALPHA * (sample - self.s_per_work)


def slot_room(slots: int, weight: float) -> int:
    """How many requests a replica of this weight runs at once: `slots` weighted, at least 1."""
    return max(1, round(slots * weight))


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    wait_s: float  # predicted seconds to the first token (inf when no replica is routable)
    best: int  # index of the replica to send it to now (admit only), else -1
    retry_after_s: int  # for a refusal: when to come back, whole seconds, at least 1


def decide(  # noqa: PLR0917 (one flat call on the hot path, no options object)
    replicas: Iterable[ReplicaLoad],
    rates: Rates,
    slots: int,
    work: int,
    prompt_tokens: int,
    deadline_s: float,
    ahead: int,
) -> Decision:
    """Admit now on the least loaded replica with a free slot when nobody is queued ahead;
    else queue when the pool is predicted to reach this request within `deadline_s` (the work
    of those ahead done at the pool's measured throughput); else refuse, saying when to come
    back."""
    best, best_held = -1, 0
    capacity = held_all = in_flight = owed = 0
    weights = 0.0
    for index, replica in enumerate(replicas):
        if not replica.routable:
            continue
        # Slots are the gateway's own count (scrapes lag, and a stale one would hold a slot
        # shut with nothing in flight to reopen it); what a replica reports queued beyond
        # them (another gateway's) still delays a newcomer.
        held = replica.in_flight
        room = slot_room(slots, replica.weight)
        capacity += room
        weights += replica.weight
        held_all += held + max(0, replica.waiting + replica.running - held)
        in_flight += replica.in_flight
        owed += replica.outstanding_work
        if held < room and (best < 0 or held < best_held):
            best, best_held = index, held
    prefill = prompt_tokens / rates.prefill_tps
    if capacity == 0:
        return Decision("refuse", float("inf"), -1, retry_after(float("inf")))
    if best >= 0 and ahead == 0:
        return Decision("admit", prefill, best, 0)
    mean_work = owed / in_flight if in_flight else float(work)
    need = ahead + 1 + max(0, held_all - capacity) - max(0, capacity - held_all)
    # The pool works through `weights` replicas' worth of tokens at once; before this request
    # starts, `need` requests' work must be done.
    wait = prefill + max(0, need) * mean_work * rates.s_per_work / weights
    if wait <= deadline_s:
        return Decision("queue", wait, -1, 0)
    return Decision("refuse", wait, -1, retry_after(wait - deadline_s))


def retry_after(wait_s: float, ceiling_s: int = 60) -> int:
    """Whole seconds to come back: the predicted drain, at least 1, at most `ceiling_s`."""
    if wait_s == float("inf"):
        return ceiling_s
    return max(1, min(ceiling_s, int(wait_s + 0.999)))


def tier_rank(tier: str | None, order: tuple[str, ...]) -> int:
    """0 for the first tier in `order` (served first), len(order) for any tier not listed."""
    try:
        return order.index(tier) if tier is not None else len(order)
    except ValueError:
        return len(order)


@dataclass
class AdmissionQueue(Generic[T]):
    """Waiting requests, best first: lower tier rank, then higher priority, then arrival.

    Bounded: when full, a newcomer that ranks above the worst entry takes its place and the
    worst is handed back to be refused; else the newcomer is refused. Sorted list, so the
    best and the worst are at the ends; sizes are hundreds, where bisect beats a heap pair.
    """

    capacity: int
    _entries: list[tuple[int, int, int, T]] = field(default_factory=list)
    _seq: "itertools.count[int]" = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.capacity

    def push(self, item: T, rank: int, priority: int = 0) -> tuple[bool, T | None]:
        """(queued?, the entry pushed out to make room or None)."""
        entry = (rank, -priority, next(self._seq), item)
        if not self.full:
            bisect.insort(self._entries, entry, key=_order)
            return True, None
        if self.capacity == 0 or _order(entry) >= _order(self._entries[-1]):
            return False, None
        evicted = self._entries.pop()[3]
        bisect.insort(self._entries, entry, key=_order)
        return True, evicted

    def peek(self) -> T | None:
        return self._entries[0][3] if self._entries else None

    def pop(self) -> T | None:
        return self._entries.pop(0)[3] if self._entries else None

    def remove(self, item: T) -> bool:
        for index, entry in enumerate(self._entries):
            if entry[3] is item:
                del self._entries[index]
                return True
        return False

    def ahead_of(self, rank: int) -> int:
        """Entries that would be served before a newcomer of `rank` (priority 0)."""
        return bisect.bisect_right(self._entries, (rank, 0), key=_order2)


def _order(entry: tuple[int, int, int, object]) -> tuple[int, int, int]:
    return entry[0], entry[1], entry[2]


def _order2(entry: tuple[int, int, int, object]) -> tuple[int, int]:
    return entry[0], entry[1]
