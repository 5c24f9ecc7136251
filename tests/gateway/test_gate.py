"""The overload gate on a real registry: a free slot admits at once, a full pool queues (best
tier first) and a finished request hands its slot on, a pool with no routable replica is let
through, and the short admission path answers as decide() does."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from inferplane.config.schema import Overload
from inferplane.gateway.admission.overload import decide
from inferplane.gateway.errors import GatewayError
from inferplane.gateway.gate import Gate
from inferplane.gateway.routing.registry import Replica, ReplicaRegistry
from inferplane.gateway.types import RouteRequest

CHAT = RouteRequest(model="chat", est_prompt_tokens=10, max_tokens=10)


def _gate(replicas: int, slots: int = 2, **overload: object) -> tuple[Gate, list[Replica]]:
    registry = ReplicaRegistry({"main": "chat"})
    registry.set_replicas("main", [f"http://127.0.0.1:{9000 + i}" for i in range(replicas)])
    config = Overload(slots=slots, **overload)  # type: ignore[arg-type]
    return Gate(config, registry, CollectorRegistry(), lambda: 0.0), registry.replicas("main")


async def test_free_slots_admit_at_once_and_a_full_pool_queues_until_one_frees() -> None:
    gate, (replica,) = _gate(1, slots=2)
    for _ in range(2):
        await gate.enter("main", CHAT)
        replica.in_flight += 1  # what the proxy does once the request is on its replica
    waiting = asyncio.create_task(gate.enter("main", CHAT))
    await asyncio.sleep(0)
    assert not waiting.done() and gate.demand("main").queued == 1
    replica.in_flight -= 1
    gate.leave("main", CHAT, 0.0, None, 2, ok=True)
    await asyncio.wait_for(waiting, 1)
    assert gate.demand("main").queued == 0


async def test_a_newcomer_does_not_pass_a_woken_request_to_its_slot() -> None:
    gate, (replica,) = _gate(1, slots=1)
    await gate.enter("main", CHAT)
    replica.in_flight += 1
    first = asyncio.create_task(gate.enter("main", CHAT))
    await asyncio.sleep(0)
    replica.in_flight -= 1
    gate.leave("main", CHAT, 0.0, None, 1, ok=True)  # the slot is reserved for `first`
    second = asyncio.create_task(gate.enter("main", CHAT))
    await asyncio.wait_for(first, 1)
    await asyncio.sleep(0.01)
    assert not second.done() and gate.demand("main").queued == 1
    second.cancel()


async def test_premium_goes_before_free_in_the_queue() -> None:
    gate, (replica,) = _gate(1, slots=1)
    await gate.enter("main", CHAT)
    replica.in_flight += 1
    free = asyncio.create_task(gate.enter("main", RouteRequest(model="chat", tier="free")))
    await asyncio.sleep(0)
    premium = asyncio.create_task(gate.enter("main", RouteRequest(model="chat", tier="premium")))
    await asyncio.sleep(0)
    replica.in_flight -= 1
    gate.leave("main", CHAT, 0.0, None, 1, ok=True)
    await asyncio.wait_for(premium, 1)
    await asyncio.sleep(0.01)
    assert not free.done()
    free.cancel()


async def test_a_pool_without_a_routable_replica_is_let_through() -> None:
    gate, replicas = _gate(2, slots=1)
    for replica in replicas:
        replica.state = "failed"
        replica.in_flight = 5
    assert await gate.enter("main", CHAT) == 0.0


async def test_past_the_queue_a_request_is_refused_with_503() -> None:
    gate, (replica,) = _gate(1, slots=1, queue_size=0)
    await gate.enter("main", CHAT)
    replica.in_flight += 1
    with pytest.raises(GatewayError) as refused:
        await gate.enter("main", CHAT)
    assert refused.value.status == 503 and gate.demand("main").refused == 1


@pytest.mark.parametrize(
    ("states", "in_flight", "weights"),
    [
        (["ready", "ready"], [2, 1], [1.0, 1.0]),
        (["ready", "ready"], [2, 2], [1.0, 1.0]),
        (["failed", "ready"], [0, 2], [1.0, 1.0]),
        (["ready", "draining"], [1, 0], [0.5, 1.0]),
        (["ready", "ready"], [1, 3], [0.2, 2.0]),
    ],
)
async def test_the_short_path_admits_exactly_when_decide_does(
    states: list[str], in_flight: list[int], weights: list[float]
) -> None:
    gate, replicas = _gate(2, slots=2, max_wait=0.001)
    for replica, state, held, weight in zip(replicas, states, in_flight, weights, strict=True):
        replica.state, replica.in_flight, replica.weight = state, held, weight  # type: ignore[assignment]
    decision = decide(replicas, gate.pool("main").rates, 2, 20, 10, 0.001, 0)
    try:
        await asyncio.wait_for(gate.enter("main", CHAT), 0.5)
        admitted = True
    except GatewayError:  # queued past the tiny deadline, or refused
        admitted = False
    assert admitted == (decision.outcome == "admit")
