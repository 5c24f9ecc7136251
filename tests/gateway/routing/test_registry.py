import pytest

from inferplane.gateway.routing.registry import ReplicaRegistry


def test_set_replicas_keeps_known_records_and_snapshots_only_routable() -> None:
    registry = ReplicaRegistry({"p": "m"})
    registry.set_replicas("p", ["http://a:1/", "http://b:2"])
    first = registry.replicas("p")[0]
    first.in_flight = 4
    registry.set_replicas("p", ["http://a:1", "http://c:3"])
    assert [r.id for r in registry.replicas("p")] == ["p/a:1", "p/c:3"]
    assert registry.replicas("p")[0] is first
    registry.replicas("p")[1].state = "failed"
    snapshots = registry.snapshots("p")
    assert [(s.id, s.in_flight) for s in snapshots] == [("p/a:1", 4)]
    assert registry.snapshots("p", frozenset({"p/a:1"})) == []
    with pytest.raises(ValueError, match="unknown pool"):
        registry.set_replicas("q", [])
