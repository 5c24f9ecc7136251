"""A pool of two real `inferplane serve demo:tiny` replicas driven past its capacity through a
real gateway: what cannot start in time is refused at once with 503, Retry-After and an
OpenAI error body, every admitted request completes, nothing is a 502, the refusals are counted
by reason, and a premium key's queued requests go before a free key's."""

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inferplane.gateway.admission.auth import hash_key
from tests.e2e.gateway_process import GatewayProcess, running_gateway
from tests.e2e.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)
KEYS = {"gold": "ip-gold-secret", "cheap": "ip-cheap-secret"}
SLOTS = 2  # per replica: the servers' --max-num-seqs and the fleet's overload.slots
REPLICA_ARGS = ("--served-model-name", "chat", "--max-model-len", "256", "--max-num-seqs", "2")


@pytest.fixture(scope="module")
def gateway(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("overload")
    replicas = [
        ServerProcess([str(tiny_model_dir), *REPLICA_ARGS], folder / f"r{i}.log") for i in range(2)
    ]
    try:
        for replica in replicas:
            replica.wait_ready()
        fleet = _fleet(folder, [replica.url for replica in replicas])
        with running_gateway(fleet, ["--health-interval", "0.5"], folder / "gw.log") as gw:
            yield gw
    finally:
        for replica in replicas:
            replica.kill()


def _fleet(folder: Path, urls: list[str]) -> Path:
    keys = folder / "keys.yaml"
    keys.write_text(
        "keys:\n"
        f'  - {{name: gold, key_hash: "{hash_key(KEYS["gold"])}", tier: premium}}\n'
        f'  - {{name: cheap, key_hash: "{hash_key(KEYS["cheap"])}", tier: free}}\n'
    )
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{', '.join(urls)}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
        f"auth: {{keys_file: {keys}}}\n"
        f"overload: {{slots: {SLOTS}, max_wait: 30s, queue_size: 16}}\n"
    )
    return fleet


def _body(max_tokens: int) -> dict[str, object]:
    content = [{"role": "user", "content": "tell me a story"}]
    return {  # ignore_eos: each request takes its whole max_tokens, so slots stay held
        "model": "chat",
        "messages": content,
        "max_tokens": max_tokens,
        "stream": True,
        "ignore_eos": True,
    }


class Outcome:
    def __init__(self) -> None:
        self.status = 0
        self.headers: httpx.Headers = httpx.Headers()
        self.body = b""
        self.answered_s = 0.0  # from sending to the status line
        self.first_at = 0.0  # monotonic time of the first body byte
        self.done_at = 0.0  # monotonic time of the last


async def _stream(
    client: httpx.AsyncClient, key: str, max_tokens: int, headers: dict[str, str] | None = None
) -> Outcome:
    outcome = Outcome()
    sent = time.monotonic()
    auth = {"authorization": f"Bearer {KEYS[key]}", **(headers or {})}
    async with client.stream(
        "POST", "/v1/chat/completions", json=_body(max_tokens), headers=auth
    ) as response:
        outcome.status, outcome.headers = response.status_code, response.headers
        outcome.answered_s = time.monotonic() - sent
        async for chunk in response.aiter_bytes():
            if not outcome.body:
                outcome.first_at = time.monotonic()
            outcome.body += chunk
    outcome.done_at = time.monotonic()
    return outcome


def _client(gateway: GatewayProcess) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.AsyncClient(base_url=gateway.url, timeout=60, limits=limits)


def _metric(text: str, reason: str) -> float:
    pattern = rf'^inference_gateway_refusals_total{{pool="main",reason="{reason}"}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_past_capacity_the_rest_is_refused_at_once(gateway: GatewayProcess) -> None:
    deadline = {"x-inferplane-deadline-ms": "1500"}  # asks for less than the fleet's 30 s
    async with _client(gateway) as client:
        burst = [asyncio.create_task(_stream(client, "cheap", 100, deadline)) for _ in range(40)]
        await asyncio.sleep(0.3)  # the pool is full now: one more, then another, on one link
        async with _client(gateway) as single:
            await single.get("/health")
            late = [await _stream(single, "cheap", 16, deadline) for _ in range(5)]
        outcomes = await asyncio.gather(*burst)
        metrics = (await client.get("/metrics")).text
    admitted = [o for o in outcomes if o.status == 200]
    refused = [o for o in [*outcomes, *late] if o.status == 503]
    statuses = [o.status for o in [*outcomes, *late]]
    assert len(admitted) + len(refused) == len(statuses), str(statuses)  # no 502, no other
    assert len(admitted) >= 2 * SLOTS and refused
    assert all(o.body.endswith(b"data: [DONE]\n\n") for o in admitted)
    for outcome in refused:
        assert int(outcome.headers["retry-after"]) >= 1
        error = httpx.Response(503, content=outcome.body).json()["error"]
        assert error["code"] == "pool_overloaded"
        assert error["type"] == "server_overloaded"
    assert all(o.status == 503 and b"pool full" in o.body for o in late), str(
        [(o.status, o.answered_s, len(o.body)) for o in late]
    )
    assert sorted(o.answered_s for o in late)[2] < 0.1
    counted = sum(_metric(metrics, r) for r in ("pool_full", "queue_full", "queue_timeout"))
    assert counted >= len(refused)


async def _wait_queued(client: httpx.AsyncClient, count: int) -> None:
    """Until the gateway's queue holds `count` requests (its gauge, not a sleep: how fast the
    blockers run depends on the host)."""
    deadline = time.monotonic() + 20
    while True:
        text = (await client.get("/metrics")).text
        found = re.search(r'^inference_gateway_queued\{pool="main"\} (\S+)$', text, re.MULTILINE)
        if found and float(found.group(1)) >= count:
            return
        assert time.monotonic() < deadline, f"the queue never held {count}"
        await asyncio.sleep(0.02)


async def test_premium_requests_queued_go_before_free_ones(gateway: GatewayProcess) -> None:
    async with _client(gateway) as client, _client(gateway) as watcher:
        blockers = [asyncio.create_task(_stream(client, "cheap", 200)) for _ in range(2 * SLOTS)]
        await asyncio.sleep(0.3)  # every slot taken
        free = [asyncio.create_task(_stream(client, "cheap", 8)) for _ in range(3)]
        await _wait_queued(watcher, 3)  # queued first
        gold = [asyncio.create_task(_stream(client, "gold", 8)) for _ in range(3)]
        await _wait_queued(watcher, 6)
        queued_all = time.monotonic()
        done = await asyncio.gather(*blockers, *free, *gold)
    assert all(o.status == 200 for o in done)
    assert all(o.first_at > 0 for o in done)
    # the test means something only if every slot was still held once all six waited
    assert not any(blocker.done_at < queued_all for blocker in done[: 2 * SLOTS])
    free_started = [o.first_at for o in done[2 * SLOTS : 2 * SLOTS + 3]]
    gold_started = [o.first_at for o in done[2 * SLOTS + 3 :]]
    # Slots that free together go to a premium and a free request at once, so the order holds
    # pairwise: the n-th premium request started no later than the n-th free one.
    assert all(g <= f for g, f in zip(sorted(gold_started), sorted(free_started), strict=True))
    assert min(gold_started) < min(free_started)
