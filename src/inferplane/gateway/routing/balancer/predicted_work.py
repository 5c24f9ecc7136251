"""predicted_work: the replica that would finish its owed tokens soonest, this request included.

A replica's owed work is the gateway's estimate of prompt plus max tokens still outstanding on
it; request counts treat a 10-token request like a 4,000-token one, this does not.
"""

from collections.abc import Sequence

from inferplane.gateway.routing.balancer.base import routable
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest


class PredictedWork:
    name = "predicted_work"
    reads_prefix = False

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        candidates = routable(replicas)
        if not candidates:
            return None
        work = req.predicted_work

        def finish(replica: ReplicaSnapshot) -> tuple[float, float, str]:
            return ((replica.outstanding_work + work) / replica.weight, replica.load, replica.id)

        return min(candidates, key=finish).id
