"""What every balancing policy is: a choice of one replica id from snapshots, or None.

Policies are synchronous and do no I/O, so the simulator runs them as they are. A policy
that needs memory (a round-robin counter, a random generator) keeps it in its own object.
"""

from collections.abc import Sequence
from typing import Protocol

from inferplane.gateway.types import ReplicaSnapshot, RouteRequest


class Policy(Protocol):
    name: str
    reads_prefix: bool  # whether select() looks at req.prefix_hashes (the simulator skips them)

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        """The id of the replica to send `req` to; None when no replica is routable."""
        ...


def routable(replicas: Sequence[ReplicaSnapshot]) -> list[ReplicaSnapshot]:
    """Replicas that may take a request now (ready; not starting, draining, asleep or failed)."""
    return [replica for replica in replicas if replica.routable]


def least_loaded(replicas: Sequence[ReplicaSnapshot]) -> ReplicaSnapshot | None:
    """Fewest requests per unit of weight; ties go to the emptier KV cache, then the id."""
    if not replicas:
        return None
    return min(replicas, key=lambda r: (r.load, r.kv_usage, r.id))
