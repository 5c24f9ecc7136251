import functools
from collections import Counter

from inferplane.gateway.routing.balancer import build_policy
from inferplane.sim.clock import SimClock
from inferplane.sim.events import EventLoop
from inferplane.sim.gateway import GatewaySettings, SimGateway
from inferplane.sim.latency import LinearStepTime
from inferplane.sim.records import RequestRecord
from inferplane.sim.replica import ReplicaEvents, ReplicaShape, SimReplica


class Pool:
    """A gateway in front of `count` ready replicas (or none yet)."""

    def __init__(self, policy: str, count: int, settings: GatewaySettings | None = None) -> None:
        self.loop = EventLoop(SimClock())
        self.holds = 0
        self.gateway = SimGateway("chat", "m", build_policy(policy), self.loop,
                                  settings or GatewaySettings(), self._held)  # fmt: skip
        self.events = ReplicaEvents(self.gateway.first_token, self.gateway.finished, lambda _: None)
        self.replicas = [self.replica(i) for i in range(count)]
        if count:
            self.gateway.publish(self.replicas)

    def _held(self) -> None:
        self.holds += 1

    def replica(self, index: int) -> SimReplica:
        name = f"r{index}"
        step = LinearStepTime(base_s=0.01)
        sim = SimReplica(name, self.gateway.replica_id(name), ReplicaShape(num_blocks=4096), step,
                         self.loop, self.events)  # fmt: skip
        sim.phase = "ready"
        return sim

    def send(self, count: int, every_s: float, out: int = 50) -> list[RequestRecord]:
        records = [RequestRecord(i, i * every_s, 64, out) for i in range(count)]
        for record in records:
            self.loop.at(record.arrival_s, functools.partial(self.gateway.arrive, record))
        return records


def _placement(records: list[RequestRecord]) -> list[str]:
    return [(r.replica or "").split("/")[-1] for r in records]


def test_round_robin_alternates_whatever_the_load() -> None:
    pool = Pool("round_robin", 3)
    records = pool.send(7, every_s=0.001)
    pool.loop.run()
    assert _placement(records) == ["r0", "r1", "r2", "r0", "r1", "r2", "r0"]
    assert all(r.outcome == "finished" for r in records)


def test_least_outstanding_spreads_long_requests_evenly() -> None:
    pool = Pool("least_outstanding", 3)
    records = pool.send(30, every_s=0.001, out=500)  # none finishes while they arrive
    pool.loop.run()
    assert Counter(_placement(records)) == {"r0": 10, "r1": 10, "r2": 10}
    assert pool.gateway.records[pool.replicas[0].id].ewma_ttft_s > 0  # TTFT seen by the gateway


def _long_then_short(policy: str) -> tuple[str, list[str]]:
    """One long request, then short ones that never overlap each other."""
    pool = Pool(policy, 2)
    long = RequestRecord(0, 0.0, 64, 2000)
    records = [long, *(RequestRecord(i, 0.1 * i, 64, 5) for i in range(1, 5))]
    for record in records:
        pool.loop.at(record.arrival_s, functools.partial(pool.gateway.arrive, record))
    pool.loop.run()
    return _placement([long])[0], _placement(records[1:])


def test_least_outstanding_follows_load_where_round_robin_does_not() -> None:
    pinned, short = _long_then_short("least_outstanding")
    assert pinned not in short  # the long request's replica is never the least loaded
    pinned, short = _long_then_short("round_robin")
    assert short.count(pinned) == 2  # every other one, load or not


def test_requests_are_held_until_a_replica_is_ready() -> None:
    pool = Pool("least_outstanding", 0)
    records = pool.send(3, every_s=1.0)
    pool.loop.at(5.0, lambda: pool.gateway.publish([pool.replica(0)]))
    pool.loop.run()
    assert pool.holds == 3 and all(r.held for r in records)
    assert [r.dispatched_s for r in records] == [5.0, 5.0, 5.0]
    first_ttft = records[0].ttft_s
    assert first_ttft is not None and first_ttft > 5.0  # the wait counts, as a client sees it


def test_held_requests_time_out_or_overflow_with_503() -> None:
    settings = GatewaySettings(hold_timeout_s=10.0, max_held=2)
    pool = Pool("round_robin", 0, settings)
    records = pool.send(3, every_s=1.0)
    pool.loop.run()
    assert [r.outcome for r in records] == ["rejected"] * 3
    assert "2 requests held" in records[2].reason
    assert "10 s hold" in records[0].reason and pool.gateway.rejected == 3
