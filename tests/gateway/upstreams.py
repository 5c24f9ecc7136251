"""Test seams for the gateway: tiny aiohttp upstreams that answer, stream, stall or fail on
demand, and the gateway app served by uvicorn inside the test's event loop."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import uvicorn
from aiohttp import web

from inferplane.config import parse_fleet
from inferplane.gateway.app import GatewayApp
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.state import GatewayState

FLEET = """
models: {chat: {source: demo:tiny}}
pools: {main: {model: chat}}
routes: [{name: default, pool: main}]
"""
CHAT = b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"content":"hi"}}]}'


@dataclass
class Behaviour:
    """What a fake replica does; tests flip fields while it runs."""

    status: int = 200
    delay_s: float = 0.0
    chunks: int = 3
    chunk_delay_s: float = 0.0
    ready: int = 200
    hits: int = 0
    broken: int = 0  # streams whose reader went away before the end
    cut_after: int | None = None  # a stream's chunks before the replica drops the connection
    bodies: list[bytes] = field(default_factory=list)


def fake_replica_app(behaviour: Behaviour, name: str) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        behaviour.hits += 1
        behaviour.bodies.append(body)
        await asyncio.sleep(behaviour.delay_s)
        if behaviour.status != 200:
            return web.json_response({"error": {"message": "boom"}}, status=behaviour.status)
        if b'"stream":true' not in body.replace(b" ", b""):
            return web.Response(
                body=CHAT, content_type="application/json", headers={"x-served-by": name}
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            for index in range(behaviour.chunks):
                if index == behaviour.cut_after and request.transport is not None:
                    request.transport.abort()  # as a replica killed mid-stream
                    return response
                await response.write(b'data: {"n": %d}\n\n' % index)
                await asyncio.sleep(behaviour.chunk_delay_s)
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionError, asyncio.CancelledError):
            behaviour.broken += 1
            raise
        return response

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(status=behaviour.ready, text="ok")

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text='vllm:num_requests_waiting{model_name="chat"} 2.0\n')

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def fake_replica(behaviour: Behaviour, name: str = "r") -> AsyncIterator[str]:
    runner = web.AppRunner(
        fake_replica_app(behaviour, name), handle_signals=False, shutdown_timeout=0.1
    )
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_gateway(
    replicas: list[str],
    settings: GatewaySettings | None = None,
    fleet: str = FLEET,
    state: GatewayState | None = None,
) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayState]]:
    """The gateway app on a free port, served by uvicorn in this event loop, and a client."""
    state = state or GatewayState(parse_fleet(fleet), settings, {"main": replicas})
    port = free_port()
    config = uvicorn.Config(
        GatewayApp(state), host="127.0.0.1", port=port, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client, state
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
