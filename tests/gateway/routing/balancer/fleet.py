"""Hand-built replica snapshots for the policy tests."""

from typing import Any

from inferplane.gateway.types import ReplicaSnapshot, RouteRequest


def replica(rid: str, **fields: Any) -> ReplicaSnapshot:
    return ReplicaSnapshot(id=rid, pool="chat", model="chat-small", url=f"http://{rid}", **fields)


def replicas(count: int, **fields: Any) -> list[ReplicaSnapshot]:
    return [replica(f"r{index}", **fields) for index in range(count)]


REQUEST = RouteRequest(model="chat-small")
