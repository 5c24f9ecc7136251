"""Which cores each running CPU replica holds: handed out when a replica starts or wakes,
given back when it exits or sleeps (a sleeping replica keeps its weights, and its threads
idle on cores a new replica may now be given).

A replica gets its pool's core count from the free cores: inside one NUMA node when a node
has enough (the node with the fewest free cores that still fits, so large holes stay whole),
else across nodes, most free first; within a node in host order, so a core's hyperthreads go
together. A replica waking asks for the cores it had first. When too few are free (a shared
fleet, a rollout's canary on a full host, a pool at zero with demand), it is given the least
loaded cores and marked shared: its threads are still its core count, never more.

The book also caps each pool's growth for the autoscaler: the replicas it has, plus those
the free cores hold (less the cores its pending restarts will take).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.control.autoscaler import ReplicaCap
from inferplane.control.cores import CorePlan
from inferplane.control.inventory import format_cpu_list


@dataclass(frozen=True)
class CoreGrant:
    """The cores one replica runs on; its threads are as many."""

    cpus: tuple[int, ...]
    shared: bool = False  # some of these cores also run another replica

    @property
    def threads(self) -> int:
        return len(self.cpus)

    def describe(self) -> str:
        """`cpus 0-1, 2 threads` (+ `, shared`)."""
        plural = "s" if self.threads != 1 else ""
        text = f"cpus {format_cpu_list(self.cpus)}, {self.threads} thread{plural}"
        return f"{text}, shared" if self.shared else text


class CoreBook:
    """The cores held by each replica of a plan's CPU pools."""

    def __init__(self, plan: CorePlan) -> None:
        self.plan = plan
        self._held: dict[str, CoreGrant] = {}

    def size(self, pool: str) -> int | None:
        """Cores per replica of the pool (at most the host's), None: not a pinned pool."""
        size = self.plan.size(pool)
        return None if size is None else min(size, len(self.plan.usable))

    def offer(self, pool: str, prefer: Sequence[int] = ()) -> CoreGrant | None:
        """The cores a new (or waking) replica of the pool would get; nothing is taken."""
        count = self.size(pool)
        if count is None:
            return None
        free = self.free()
        if len(prefer) == count and set(prefer) <= set(free):
            return CoreGrant(tuple(prefer))
        if len(free) >= count:
            return CoreGrant(self._pick_free(set(free), count))
        return self._least_loaded(count)

    def hold(self, replica: str, grant: CoreGrant) -> None:
        self._held[replica] = grant

    def release(self, replica: str) -> None:
        self._held.pop(replica, None)

    def holding(self, replica: str) -> CoreGrant | None:
        return self._held.get(replica)

    def load(self) -> dict[int, int]:
        """Replicas running on each usable core."""
        load = dict.fromkeys(self.plan.usable, 0)
        for grant in self._held.values():
            for cpu in grant.cpus:
                load[cpu] = load.get(cpu, 0) + 1
        return load

    def free(self) -> tuple[int, ...]:
        """Usable cores no replica holds, in placement order."""
        load = self.load()
        return tuple(cpu for cpu in self.plan.usable if load[cpu] == 0)

    def cap(self, pool: str, active: int, pending: int = 0) -> ReplicaCap | None:
        """How far the pool may grow on free cores; `active` counts its replicas up or coming
        (`pending` of them restarts, which hold no core yet). None: not a pinned pool."""
        size = self.size(pool)
        if size is None:
            return None
        free = len(self.free())
        room = max(free - pending * size, 0) // size
        usable = len(self.plan.usable)
        reason = f"{free} of {usable} cores free, {size} per replica"
        return ReplicaCap(active + room, reason)

    def _pick_free(self, free: set[int], count: int) -> tuple[int, ...]:
        nodes = [[cpu for cpu in node if cpu in free] for node in self.plan.host.nodes]
        fitting = [node for node in nodes if len(node) >= count]
        if fitting:
            return tuple(min(fitting, key=len)[:count])  # min keeps the first on a tie
        picked: list[int] = []
        for node in sorted(nodes, key=len, reverse=True):
            picked.extend(node[: count - len(picked)])
        return self._ordered(picked)

    def _least_loaded(self, count: int) -> CoreGrant:
        load = self.load()
        usable = self.plan.usable
        chosen = sorted(usable, key=lambda cpu: (load[cpu], usable.index(cpu)))[:count]
        return CoreGrant(self._ordered(chosen), any(load[cpu] for cpu in chosen))

    def _ordered(self, cpus: Sequence[int]) -> tuple[int, ...]:
        order = self.plan.host.cpus
        return tuple(sorted(cpus, key=order.index))
