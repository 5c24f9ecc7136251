import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from inferplane.http.backpressure import StallGuardedProtocol, StreamLimits

LIMITS = StreamLimits(buffer_bytes=4096, stall_timeout_s=0.5)
CHUNK = b"x" * 2048


class Endless:
    """An ASGI app streaming chunks until the client is gone; it records how it ended."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        watcher = asyncio.create_task(self._watch(receive))
        while not self.gone.is_set():
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            await asyncio.sleep(0)
        watcher.cancel()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone.set()


@contextlib.asynccontextmanager
async def serving(app: Endless, protocol: type[StallGuardedProtocol]) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=protocol, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def open_stream(port: int) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
    await asyncio.get_running_loop().sock_sendall(client, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    return client


async def assert_a_silent_reader_is_cut_off(protocol: type[StallGuardedProtocol]) -> None:
    """A client that reads nothing loses its stream (the app sees it gone)."""
    app = Endless()
    async with serving(app, protocol) as port:
        client = await open_stream(port)
        await asyncio.wait_for(app.gone.wait(), timeout=5)
        client.close()


async def assert_a_slow_reader_is_kept(protocol: type[StallGuardedProtocol]) -> None:
    """A client that takes a little in every stall timeout keeps its stream until it leaves."""
    app = Endless()
    async with serving(app, protocol) as port:
        client = await open_stream(port)
        loop = asyncio.get_running_loop()
        for _ in range(20):  # 2 s: four stall timeouts, a little read in each
            await asyncio.sleep(0.1)
            assert await loop.sock_recv(client, 8192)
        assert not app.gone.is_set()
        client.close()
        await asyncio.wait_for(app.gone.wait(), timeout=5)


async def test_a_client_that_reads_nothing_is_cut_off() -> None:
    await assert_a_silent_reader_is_cut_off(StallGuardedProtocol.with_limits(LIMITS))


async def test_a_client_that_reads_slowly_is_kept() -> None:
    await assert_a_slow_reader_is_kept(StallGuardedProtocol.with_limits(LIMITS))


def test_with_limits_makes_a_subclass_and_leaves_the_base_alone() -> None:
    protocol = StallGuardedProtocol.with_limits(LIMITS)
    assert issubclass(protocol, StallGuardedProtocol) and protocol is not StallGuardedProtocol
    assert protocol.limits == LIMITS
    assert StallGuardedProtocol.limits == StreamLimits()


@pytest.mark.parametrize(("size", "stall"), [(512, 1.0), (4096, 0.0), (4096, -1.0)])
def test_limits_refuse_what_cannot_work(size: int, stall: float) -> None:
    with pytest.raises(ValueError, match=r"stream buffer|stall timeout"):
        StreamLimits(size, stall)
