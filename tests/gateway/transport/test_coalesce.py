import asyncio
import socket
from typing import Any

import httpx
import pytest
import uvicorn

from inferplane.gateway.transport.asgi import Receive, Scope, Send
from inferplane.gateway.transport.coalesce import CoalescingHttpToolsProtocol, CoalescingTransport


class Recording(asyncio.Transport):
    """The transport under the wrapper (a seam): it records each write() it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_in_one_loop_turn_go_out_as_one() -> None:
    inner = Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.write(b"body")
    assert inner.writes == [] and transport.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[-1] == b"next"


async def test_close_sends_what_was_written_first() -> None:
    inner = Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"] and inner.closed
    transport.write(b"too late")
    await asyncio.sleep(0)
    assert inner.writes == [b"last words"]
    assert transport.get_extra_info("peername") is None  # the rest is the inner transport's


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    stream = scope["path"] == "/stream"
    headers = [] if stream else [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if stream:
        for chunk in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"" if stream else b"hello"})


@pytest.mark.timeout(20)
async def test_uvicorn_serves_whole_and_streamed_answers_through_it() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config: Any = uvicorn.Config(
        _app, http=CoalescingHttpToolsProtocol, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # keep-alive: the next answer on the same connection
                assert (await client.get("/")).text == "hello"
            async with client.stream("GET", "/stream") as response:
                chunks = [chunk async for chunk in response.aiter_bytes()]
            assert b"".join(chunks) == b"abc"
    finally:
        server.should_exit = True
        await task
