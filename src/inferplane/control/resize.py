"""Which replicas a pool's resize touches: pure choices over the pool as the controller sees it,
made by the controller and by the simulator alike.

Scaling down, each replica to remove is, in order: a pending restart (cancelled: nothing runs
yet), the newest starting replica (it holds nothing), then the least busy ready one (in flight
+ waiting + running as the gateway counts them; the older one on a tie). Sleeping and draining
replicas are never chosen: they serve nothing. Each chosen replica drains (out of the
balancer, it finishes what it holds, then stops), except under `tier.keep_warm`: when the
scale-down empties the pool and no replica sleeps yet, the first ready one chosen sleeps
instead (the process stays, the engine frees its weights), so the next request wakes it rather
than starting one cold.

Scaling up, a sleeping replica is woken first (seconds), else one starts cold.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.control.replicas import Phase


@dataclass(frozen=True)
class Candidate:
    """One replica of the pool: its id, phase, and its load as the gateway counts it."""

    id: str
    phase: Phase
    busy: int = 0  # in flight + waiting + running


@dataclass(frozen=True)
class ScaleDown:
    """A scale-down: restarts to cancel, replicas to drain, the replica to put to sleep."""

    cancel_restarts: int = 0
    drain: tuple[str, ...] = ()
    sleep: str | None = None


@dataclass(frozen=True)
class ScaleUp:
    """A scale-up: sleeping replicas to wake, then how many to start cold."""

    wake: tuple[str, ...] = ()
    start: int = 0


def scale_down(
    replicas: Sequence[Candidate], count: int, *, restarts_due: int = 0, keep_warm: bool = False
) -> ScaleDown:
    """Take `count` replicas (pending restarts included) out of a pool, in the order above."""
    cancel = min(max(count, 0), restarts_due)
    starting = [r for r in replicas if r.phase == "starting"]
    ready = sorted((r for r in replicas if r.phase == "ready"), key=lambda r: r.busy)
    order = starting[::-1] + ready  # sorted() is stable: the older first among equals
    victims = order[: max(count - cancel, 0)]
    emptied = cancel == restarts_due and len(victims) == len(order)
    asleep = any(r.phase == "sleeping" for r in replicas)
    sleeper = None
    if keep_warm and emptied and not asleep:
        sleeper = next((v.id for v in victims if v.phase == "ready"), None)
    drain = tuple(v.id for v in victims if v.id != sleeper)
    return ScaleDown(cancel, drain, sleeper)


def scale_up(replicas: Sequence[Candidate], count: int) -> ScaleUp:
    """Add `count` replicas to a pool: wake sleeping ones first, then start the rest cold."""
    wake = tuple(r.id for r in replicas if r.phase == "sleeping")[: max(count, 0)]
    return ScaleUp(wake, max(count - len(wake), 0))
