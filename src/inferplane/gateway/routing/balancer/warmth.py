"""warmth: prefer hot replicas (weights in GPU memory), then warm, then cold.

Among replicas of the best tier present, the least loaded wins. A replica that is asleep or
still loading is not routable at all; this policy only orders the ready ones, so traffic
gathers on hot replicas and lets the controller cool the idle ones.
"""

from collections.abc import Sequence

from inferplane.gateway.routing.balancer.base import least_loaded, routable
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest

_RANK = {"hot": 0, "warm": 1, "cold": 2}


class Warmth:
    name = "warmth"
    reads_prefix = False

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        candidates = routable(replicas)
        if not candidates:
            return None
        best_rank = min(_RANK[replica.tier] for replica in candidates)
        best = least_loaded([r for r in candidates if _RANK[r.tier] == best_rank])
        return None if best is None else best.id
