"""round_robin: each routable replica in turn, ignoring load (the baseline to beat)."""

from collections.abc import Sequence

from inferplane.gateway.routing.balancer.base import routable
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest


class RoundRobin:
    """Turns through routable replicas sorted by id, so the order survives reshuffled input."""

    name = "round_robin"
    reads_prefix = False

    def __init__(self) -> None:
        self._turn = 0

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        ids = sorted(replica.id for replica in routable(replicas))
        if not ids:
            return None
        chosen = ids[self._turn % len(ids)]
        self._turn += 1
        return chosen
