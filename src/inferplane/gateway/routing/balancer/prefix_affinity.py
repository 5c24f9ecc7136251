"""prefix_affinity: requests sharing a prompt prefix go to the same replica, within a bound.

A request goes to the replica that last served the longest prefix it shares with earlier
requests (its cache holds the most), as long as that replica is under the load bound
(Mirrokni, Thorup and Zadimoghaddam, 2018): it holds fewer than ceil(load_bound x average)
requests, weight-scaled, so one hot prefix fills its replica to the bound and then spills
instead of melting it.

Every prompt opening (its first block hash) has a fixed order of replicas on a consistent-hash
ring (virtual nodes, more for heavier replicas). A prefix whose replica is at the bound spills
along that order, to the first replica under the bound, so a hot prefix lives on a few
replicas, not on all. A prefix no replica holds has nothing to gain from affinity, only
queueing to lose: placing it by hash alone is how cache-aware routing ends up slower than
round robin when little is shared. So it goes to its ring owner only while that replica holds
at most one request more than the least loaded one (per unit of weight, and under the bound);
otherwise to the least loaded. At light load the ring decides, so gateways that do not share
memory still send one conversation to one replica; under load the choice is
least_outstanding's. In the simulator,
this keeps p90 TTFT within a few percent of least_outstanding on a trace that shares nothing
(Azure conversations) and several times below round robin's on one that shares much
(Mooncake); see bench/bench_routing.py.
"""

import bisect
import math
from collections.abc import Callable, Sequence

from inferplane.gateway.routing.balancer.base import least_loaded, routable
from inferplane.gateway.routing.hashing import hash64, mix64
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest

_RING_SLACK = 1.0  # requests (per unit of weight) the ring owner may hold above the least loaded


class PrefixAffinity:
    name = "prefix_affinity"
    reads_prefix = True

    def __init__(self, load_bound: float = 1.25, virtual_nodes: int = 64, memory: int = 65_536):
        if load_bound < 1.0 or virtual_nodes < 1 or memory < 1:
            raise ValueError(
                "use load_bound >= 1 (1.25 is typical), virtual_nodes >= 1, memory >= 1"
            )
        self.load_bound, self._vnodes, self._memory = load_bound, virtual_nodes, memory
        self._members: tuple[tuple[str, float], ...] = ()  # as given, to skip re-sorting
        self._ring_key: tuple[tuple[str, float], ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []
        self._seen: dict[int, str] = {}  # prefix hash -> replica last sent it; oldest first

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        candidates = routable(replicas)
        if not candidates or not req.prefix_hashes:
            best = least_loaded(candidates)
            return None if best is None else best.id
        by_id = {replica.id: replica for replica in candidates}
        eligible = self._bounded(candidates)
        remembered = self._longest_seen(req.prefix_hashes)
        key = mix64(req.prefix_hashes[0])
        if remembered not in by_id:
            chosen = self._place(key, candidates, by_id, eligible)
        elif eligible(by_id[remembered]):
            chosen = remembered
        else:
            chosen = self._walk(key, candidates, by_id, eligible)
        self._remember(req.prefix_hashes, chosen)
        return chosen

    def _bounded(self, replicas: list[ReplicaSnapshot]) -> Callable[[ReplicaSnapshot], bool]:
        total = sum(r.load * r.weight for r in replicas) + 1  # the new request counts too
        share = self.load_bound * total / sum(r.weight for r in replicas)
        # 1e-9 keeps float noise (2.0000000001) from adding a whole request to the bound
        return lambda r: r.load * r.weight + 1 <= math.ceil(share * r.weight - 1e-9)

    def _longest_seen(self, hashes: Sequence[int]) -> str | None:
        for value in reversed(hashes):
            replica = self._seen.get(value)
            if replica is not None:
                return replica
        return None

    def _place(
        self,
        key: int,
        replicas: list[ReplicaSnapshot],
        by_id: dict[str, ReplicaSnapshot],
        eligible: Callable[[ReplicaSnapshot], bool],
    ) -> str:
        """Where a prefix no replica holds goes: its ring owner while that is about as idle as
        the least loaded replica (and under the bound), else the least loaded."""
        least = least_loaded(replicas)
        if least is None:  # unreachable: select() passes at least one replica
            raise ValueError("no replica to place the request on")
        self._build_ring(replicas)
        owner = by_id[self._owners[bisect.bisect(self._points, key) % len(self._points)]]
        if owner.load <= least.load + _RING_SLACK and eligible(owner):
            return owner.id
        return least.id

    def _walk(
        self,
        key: int,
        replicas: list[ReplicaSnapshot],
        by_id: dict[str, ReplicaSnapshot],
        eligible: Callable[[ReplicaSnapshot], bool],
    ) -> str:
        """The first replica under the bound along the ring from `key`."""
        self._build_ring(replicas)
        start, tried = bisect.bisect(self._points, key), set()
        for step in range(len(self._points)):
            owner = self._owners[(start + step) % len(self._points)]
            if owner not in tried and eligible(by_id[owner]):
                return owner
            tried.add(owner)
        return min(replicas, key=lambda r: (r.load, r.id)).id  # unreachable when bound >= 1

    def _build_ring(self, replicas: list[ReplicaSnapshot]) -> None:
        members = tuple((r.id, r.weight) for r in replicas)
        if members == self._members:
            return  # the same replicas in the same order: the same ring, no sort needed
        self._members = members
        ring_key = tuple(sorted(members))
        if ring_key == self._ring_key:
            return
        points = sorted(
            (hash64(f"{rid}#{i}".encode()), rid)
            for rid, weight in ring_key
            for i in range(max(1, round(self._vnodes * weight)))
        )
        self._ring_key = ring_key
        self._points, self._owners = [p for p, _ in points], [o for _, o in points]

    def _remember(self, hashes: Sequence[int], replica: str) -> None:
        for value in hashes:
            self._seen.pop(value, None)  # re-insert at the young end
            self._seen[value] = replica
        while len(self._seen) > self._memory:
            del self._seen[next(iter(self._seen))]
