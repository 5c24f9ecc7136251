"""What every balancing policy is: a choice of one replica id from snapshots, or None.

Policies are synchronous and do no I/O, so the simulator runs them as they are. A policy
that needs memory (a round-robin counter, a random generator) keeps it in its own object.
"""

import operator
from collections.abc import Sequence
from typing import Protocol

from inferplane.gateway.types import ReplicaSnapshot, RouteRequest

_STATE = operator.attrgetter("state")


class Policy(Protocol):
    name: str
    reads_prefix: bool  # whether select() looks at req.prefix_hashes (the simulator skips them)

    def select(self, req: RouteRequest, replicas: Sequence[ReplicaSnapshot]) -> str | None:
        """The id of the replica to send `req` to; None when no replica is routable."""
        ...


def routable(replicas: Sequence[ReplicaSnapshot]) -> list[ReplicaSnapshot]:
    """Replicas that may take a request now (ready; not starting, draining, asleep or failed)."""
    # ReplicaSnapshot.routable, read as a field: this runs over every replica per request,
    # and in the gateway (its registry hands over ready ones) usually all of them are
    states = list(map(_STATE, replicas))
    if states.count("ready") == len(states):
        return list(replicas)
    return [replica for replica, state in zip(replicas, states, strict=True) if state == "ready"]


def least_loaded(replicas: Sequence[ReplicaSnapshot]) -> ReplicaSnapshot | None:
    """Fewest requests per unit of weight; ties go to the emptier KV cache, then the id."""
    if not replicas:
        return None
    return min(replicas, key=lambda r: (r.load, r.kv_usage, r.id))
