"""The gateway app end to end in one event loop: fake replicas (aiohttp) behind the real app
on uvicorn, driven over HTTP."""

import asyncio
import json
from typing import Any

import httpx
import pytest

from inferplane.gateway.admission.auth import hash_key
from inferplane.gateway.proxy import ProxyConfig
from inferplane.gateway.routing.health import HealthConfig
from inferplane.gateway.settings import GatewaySettings
from tests.gateway.upstreams import CHAT, FLEET, Behaviour, fake_replica, running_gateway

pytestmark = pytest.mark.timeout(30)
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


async def test_non_streaming_passes_bytes_and_names_the_route() -> None:
    behaviour = Behaviour()
    async with fake_replica(behaviour) as url, running_gateway([url]) as (client, _):
        response = await client.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 200
    assert response.content == CHAT
    assert response.headers["x-inferplane-route"] == "default:main"
    assert response.headers["x-inferplane-replica"] == "main/" + url.removeprefix("http://")
    assert response.headers["x-served-by"] == "r"
    assert behaviour.bodies == [httpx.Request("POST", "/", json=BODY).content]


async def test_streaming_relays_every_chunk() -> None:
    behaviour = Behaviour(chunks=5, chunk_delay_s=0.01)
    async with fake_replica(behaviour) as url, running_gateway([url]) as (client, state):
        ttfts: list[tuple[str, float]] = []
        state.proxy.on_ttft = lambda pool, seconds: ttfts.append((pool, seconds))
        async with client.stream(
            "POST", "/v1/chat/completions", json={**BODY, "stream": True}
        ) as r:
            text = "".join([chunk async for chunk in r.aiter_text()])
        metrics = (await client.get("/metrics")).text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert text.count("data: ") == 6 and text.endswith("data: [DONE]\n\n")
    assert 'inference_time_to_first_token_seconds_count{model="chat",pool="main"} 1.0' in metrics
    assert next(iter(state.registry)).in_flight == 0
    assert [pool for pool, _ in ttfts] == ["main"] and 0 < ttfts[0][1] < 5


async def test_in_flight_work_is_counted_for_predicted_work_and_released() -> None:
    """predicted_work balances on prompt + max tokens in flight per replica: the gateway keeps
    that count while a request is out and gives it back when it ends."""
    behaviour = Behaviour(delay_s=0.5)
    async with fake_replica(behaviour) as url, running_gateway([url]) as (client, state):
        replica = next(iter(state.registry))
        sent = asyncio.create_task(
            client.post("/v1/chat/completions", json={**BODY, "max_tokens": 300})
        )
        for _ in range(50):  # at most 0.5 s
            if replica.in_flight:
                break
            await asyncio.sleep(0.01)
        during = state.registry.snapshots("main")[0].outstanding_work
        assert (await sent).status_code == 200
    assert during > 300  # the max tokens plus the prompt's estimate
    assert replica.outstanding_work == 0 and replica.in_flight == 0


async def test_a_client_hanging_up_mid_stream_closes_the_upstream_stream() -> None:
    behaviour = Behaviour(chunks=200, chunk_delay_s=0.02)
    async with fake_replica(behaviour) as url, running_gateway([url]) as (client, state):
        async with client.stream(
            "POST", "/v1/chat/completions", json={**BODY, "stream": True}
        ) as response:
            async for _ in response.aiter_bytes():
                break  # hang up after the first bytes
        for _ in range(100):  # at most 2 s
            if behaviour.broken:
                break
            await asyncio.sleep(0.02)
        metrics = (await client.get("/metrics")).text
    assert behaviour.broken == 1
    assert next(iter(state.registry)).in_flight == 0
    assert 'status="499"' in metrics


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"messages": []}', 400, "model"),
        (b'{"model": "nope"}', 404, "model"),
    ],
)
async def test_bad_requests_get_openai_errors(content: bytes, status: int, param: str) -> None:
    async with fake_replica(Behaviour()) as url, running_gateway([url]) as (client, _):
        response = await client.post("/v1/chat/completions", content=content)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


async def test_body_too_large_is_413_and_paths_and_probes() -> None:
    settings = GatewaySettings(max_body_bytes=2048)
    async with fake_replica(Behaviour()) as url, running_gateway([url], settings) as (client, _):
        big = await client.post("/v1/chat/completions", content=b"x" * 5000)
        missing = await client.get("/v1/nothing")
        wrong_method = await client.get("/v1/chat/completions")
        models = await client.get("/v1/models")
        health, ready = await client.get("/health"), await client.get("/ready")
    assert big.status_code == 413
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert [m["id"] for m in models.json()["data"]] == ["chat"]
    assert models.json()["data"][0]["created"] > 1_700_000_000  # a unix time, as OpenAI's
    assert (health.status_code, ready.status_code) == (200, 200)


async def test_failover_from_a_dead_replica_then_ejection() -> None:
    behaviour = Behaviour()
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    settings = GatewaySettings(health=HealthConfig(interval_s=60, eject_after=2))
    async with (
        fake_replica(behaviour) as url,
        running_gateway([dead, url], settings) as (client, state),
    ):
        state.registry.replicas("main")[0].state = "ready"  # pretend the first check passed
        statuses = [
            (await client.post("/v1/chat/completions", json=BODY)).status_code for _ in range(10)
        ]
    assert statuses == [200] * 10
    assert behaviour.hits == 10
    assert state.registry.replicas("main")[0].state == "failed"


async def test_failures_pass_the_last_answer_on_and_client_errors_are_not_retried() -> None:
    behaviour = Behaviour(status=500)
    settings = GatewaySettings(health=HealthConfig(eject_after=10))
    async with fake_replica(behaviour) as url, running_gateway([url], settings) as (client, _):
        failed = await client.post("/v1/chat/completions", json=BODY)
        behaviour.status = 400
        rejected = await client.post("/v1/chat/completions", json=BODY)
    assert failed.status_code == 500  # the replica's own answer, after the retries
    assert rejected.status_code == 400
    assert behaviour.hits == 3 + 1  # three attempts, then one (400 is the client's)


async def test_no_replica_is_503_and_slow_is_504() -> None:
    settings = GatewaySettings(proxy=ProxyConfig(first_token_timeout_s=0.2, total_timeout_s=0.3))
    slow = Behaviour(delay_s=1.0)
    async with fake_replica(slow) as url, running_gateway([url], settings) as (client, state):
        timed_out = await client.post("/v1/chat/completions", json=BODY)
        no_first_byte = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
        state.set_replicas("main", [])
        empty = await client.post("/v1/chat/completions", json=BODY)
    assert timed_out.status_code == 504
    assert no_first_byte.status_code in (502, 504)
    assert empty.status_code == 503 and empty.headers["retry-after"] == "1"
    assert empty.json()["error"]["code"] == "no_healthy_replica"


async def test_stream_without_first_byte_fails_over() -> None:
    stalled, healthy = Behaviour(delay_s=1.0), Behaviour()
    settings = GatewaySettings(proxy=ProxyConfig(first_token_timeout_s=0.2))
    async with (
        fake_replica(stalled, "stalled") as a,
        fake_replica(healthy, "healthy") as b,
        running_gateway([a, b], settings) as (client, _),
    ):
        results = await asyncio.gather(
            *(client.post("/v1/chat/completions", json={**BODY, "stream": True}) for _ in range(4))
        )
    assert all(r.status_code == 200 and r.text.endswith("[DONE]\n\n") for r in results)


def _last_event(text: str) -> dict[str, Any]:
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: ")]
    assert "[DONE]" not in events  # a cut answer is never passed off as a whole one
    last: dict[str, Any] = json.loads(events[-1])
    return last


async def test_a_stream_the_replica_breaks_ends_with_an_error_event() -> None:
    behaviour = Behaviour(chunks=10, cut_after=3)
    async with fake_replica(behaviour) as url, running_gateway([url]) as (client, _):
        response = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200  # committed at the first byte: never replayed
    assert response.text.count('{"n": ') == 3
    error = _last_event(response.text)["error"]
    assert error["code"] == "upstream_stream_broken" and error["type"] == "upstream_error"
    assert 'status="502"' in metrics


async def test_a_stream_past_the_total_timeout_ends_with_an_error_event() -> None:
    settings = GatewaySettings(proxy=ProxyConfig(total_timeout_s=0.5))
    behaviour = Behaviour(chunks=100, chunk_delay_s=0.05)
    async with fake_replica(behaviour) as url, running_gateway([url], settings) as (client, _):
        response = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
    assert response.status_code == 200
    assert 2 <= response.text.count('{"n": ') < 100
    error = _last_event(response.text)["error"]
    assert error["code"] == "upstream_timeout" and "0.5s" in error["message"]


async def test_keys_401_403_429(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n"
        f"  - {{name: a, key_hash: '{hash_key('ip-a')}', models: [chat], requests_per_minute: 1}}\n"
        f"  - {{name: b, key_hash: '{hash_key('ip-b')}', models: [other]}}\n"
    )
    fleet = FLEET + f"auth: {{keys_file: {keys}}}\n"
    async with fake_replica(Behaviour()) as url, running_gateway([url], fleet=fleet) as (client, _):
        post = client.post
        none = await post("/v1/chat/completions", json=BODY)
        bad = await post("/v1/chat/completions", json=BODY, headers=_bearer("ip-x"))
        other = await post("/v1/chat/completions", json=BODY, headers=_bearer("ip-b"))
        first = await post("/v1/chat/completions", json=BODY, headers=_bearer("ip-a"))
        second = await post("/v1/chat/completions", json=BODY, headers=_bearer("ip-a"))
    assert (none.status_code, bad.status_code, other.status_code) == (401, 401, 403)
    assert (first.status_code, second.status_code) == (200, 429)
    assert int(second.headers["retry-after"]) >= 1
    assert second.json()["error"]["type"] == "rate_limit_error"


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
