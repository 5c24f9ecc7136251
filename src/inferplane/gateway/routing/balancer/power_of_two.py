"""power_of_two: sample two routable replicas at random, take the less loaded.

Nearly as good as least_outstanding with fresh numbers, and much better with stale ones:
it cannot herd every request onto the one replica that looked emptiest at the last scrape.
It draws the pair from all replicas first and keeps it when both are routable (the same
distribution as drawing from the routable ones), so a pool of a thousand is not scanned per
request; only when one of the pair is not routable are the routable ones listed.
"""

import random
from collections.abc import Sequence

from inferplane.gateway.routing.balancer.base import least_loaded, routable
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest


class PowerOfTwo:
    name = "power_of_two"
    reads_prefix = False

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # seeded: a simulation replays the same choices

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        if len(replicas) > 2:  # two at random first: when both are routable, nothing to filter
            pair = self._random.sample(replicas, 2)
            if pair[0].routable and pair[1].routable:
                return min(pair, key=lambda r: (r.load, r.kv_usage, r.id)).id
        candidates = routable(replicas)
        if len(candidates) > 2:
            candidates = self._random.sample(candidates, 2)
        best = least_loaded(candidates)
        return None if best is None else best.id
