"""least_outstanding: the replica holding the fewest requests per unit of weight.

A replica's load counts the larger of the gateway's own in-flight requests to it and what it
reports running plus waiting, so it sees traffic from other gateways once scraped and its own
traffic at once.
"""

from collections.abc import Sequence

from inferplane.gateway.routing.balancer.base import least_loaded, routable
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest


class LeastOutstanding:
    name = "least_outstanding"
    reads_prefix = False

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        best = least_loaded(routable(replicas))
        return None if best is None else best.id
