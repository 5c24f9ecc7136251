"""`inferplane gateway` as a real process in front of small aiohttp upstreams that this test
controls (the fault-injection seam: real replicas cannot be told to fail or to stream slowly):
outlier ejection and readmission, and 1,000 concurrent open streams without an error."""

import asyncio
import contextlib
import re
import resource
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.gateway_process import GatewayProcess
from tests.gateway.upstreams import Behaviour, fake_replica

pytestmark = pytest.mark.timeout(90)
STREAMS = 1000
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for ~4 sockets per stream (client, gateway in and out, upstream) in this process
    and in the gateway, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 16384) if hard != resource.RLIM_INFINITY else 16384
    if wanted < 4 * STREAMS + 256:
        pytest.skip(f"the open-file limit ({hard}) is too low for {STREAMS} streams")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.asynccontextmanager
async def gateway_over(
    folder: Path, urls: list[str], args: list[str]
) -> AsyncIterator[GatewayProcess]:
    """The gateway process, started without blocking this loop (it serves the upstreams)."""
    gateway = GatewayProcess(_fleet(folder, urls), args, folder / "gw.log")
    try:
        await asyncio.to_thread(gateway.wait_up)
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # every replica checked ready once: at most 10 s
                async with session.get(f"{gateway.url}/ready") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
        yield gateway
    finally:
        await asyncio.to_thread(gateway.stop)


def _fleet(folder: Path, urls: list[str]) -> Path:
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{', '.join(urls)}]}}}}\n"
        "balancing: {policy: round_robin}\n"
        # The fake replica batches without limit: let the gate give it every stream at once.
        "overload: {slots: 2000}\n"
    )
    return fleet


async def _chat(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(f"{url}/v1/chat/completions", json=BODY) as response:
        await response.read()
        return response.status


async def _metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_ejection_then_readmission(tmp_path: Path) -> None:
    sick, healthy = Behaviour(status=500), Behaviour()
    args = ["--health-interval", "0.2", "--eject-after", "2"]
    async with (
        fake_replica(sick, "sick") as a,
        fake_replica(healthy, "healthy") as b,
        gateway_over(tmp_path, [a, b], args) as gateway,
        aiohttp.ClientSession() as session,
    ):
        statuses = [await _chat(session, gateway.url) for _ in range(12)]
        assert statuses == [200] * 12  # every failure was retried on the healthy one
        ejections = "inference_gateway_ejections_total"
        assert await _metric(session, gateway.url, ejections) == 1.0
        hits_while_ejected = sick.hits
        await _chat(session, gateway.url)
        assert sick.hits == hits_while_ejected  # ejected: no traffic
        sick.status = 200
        deadline = time.monotonic() + 15
        while sick.hits == hits_while_ejected and time.monotonic() < deadline:
            assert await _chat(session, gateway.url) == 200
            await asyncio.sleep(0.1)
        assert sick.hits > hits_while_ejected  # readmitted after its ejection time


async def test_a_thousand_concurrent_streams(tmp_path: Path, many_files: None) -> None:
    upstream = Behaviour(chunks=20, chunk_delay_s=0.15)
    open_now, most_open = [0], [0]
    async with fake_replica(upstream) as url, gateway_over(tmp_path, [url], []) as gateway:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def stream() -> bytes:
                payload = {**BODY, "stream": True}
                async with session.post(
                    f"{gateway.url}/v1/chat/completions", json=payload
                ) as response:
                    assert response.status == 200
                    open_now[0] += 1
                    most_open[0] = max(most_open[0], open_now[0])
                    body = await response.read()
                    open_now[0] -= 1
                    return body

            bodies = await asyncio.gather(*(stream() for _ in range(STREAMS)))
    assert all(body.count(b"data: ") == 21 and body.endswith(b"[DONE]\n\n") for body in bodies)
    assert most_open[0] >= STREAMS * 0.9  # they were open at the same time
