"""The lean upstream client against small raw TCP servers that answer exactly as told."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from inferplane.gateway.transport.client import PIECE, Pool, UpstreamClosed

pytestmark = pytest.mark.timeout(10)
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)
Reply = Callable[[asyncio.StreamWriter], None]


async def _server(reply: Reply, connections: list[int]) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while await reader.readuntil(b"\r\n\r\n"):
            await reader.readexactly(2)  # every test body is "{}"
            reply(writer)
            await writer.drain()
            if writer.is_closing():
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def _post(pool: Pool) -> tuple[int, bytes]:
    conn = await pool.acquire(1.0)
    try:
        conn.send(pool.request_head(b"/v1/x", 2, b""), b"{}")
        status, _ = await conn.read_head()
        return status, await conn.read_all()
    finally:
        pool.release(conn)


async def test_keep_alive_reuses_one_connection() -> None:
    connections: list[int] = []
    async for url in _server(lambda w: w.write(OK), connections):
        pool = Pool(url, keepalive_s=5.0, clock=lambda: 0.0)
        assert [await _post(pool) for _ in range(3)] == [(200, b"{}")] * 3
        pool.close()
    assert len(connections) == 1


async def test_chunked_body_streams_in_pieces() -> None:
    async for url in _server(lambda w: w.write(CHUNKED), []):
        pool = Pool(url, keepalive_s=5.0, clock=lambda: 0.0)
        conn = await pool.acquire(1.0)
        conn.send(pool.request_head(b"/v1/x", 2, b""), b"{}")
        assert (await conn.read_head())[0] == 200
        pieces = []
        while piece := await conn.read_chunk():
            pieces.append(piece)
        assert b"".join(pieces) == b"hello world"
        pool.release(conn)
        assert len(pool.idle) == 1


async def test_a_backlog_is_handed_over_in_pieces() -> None:
    body = bytes(range(256)) * 1024  # 256 KiB in one chunk: a slow client's backlog
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n" % len(body)
    async for url in _server(lambda w: w.write(head + body + b"\r\n0\r\n\r\n"), []):
        pool = Pool(url, keepalive_s=5.0, clock=lambda: 0.0)
        conn = await pool.acquire(1.0)
        conn.send(pool.request_head(b"/v1/x", 2, b""), b"{}")
        assert (await conn.read_head())[0] == 200
        while not conn.complete:  # everything buffered before the first read
            await asyncio.sleep(0.01)
        pieces = []
        while piece := await conn.read_chunk():
            pieces.append(piece)
        assert b"".join(pieces) == body
        assert max(map(len, pieces)) == PIECE and conn.buffered == 0
        pool.release(conn)


async def test_a_replica_closing_mid_body_raises() -> None:
    def half(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        writer.close()

    async for url in _server(half, []):
        pool = Pool(url, keepalive_s=5.0, clock=lambda: 0.0)
        with pytest.raises(UpstreamClosed):
            await _post(pool)
        assert pool.idle == []


async def test_idle_connections_expire() -> None:
    now = [0.0]
    connections: list[int] = []
    async for url in _server(lambda w: w.write(OK), connections):
        pool = Pool(url, keepalive_s=1.0, clock=lambda: now[0])
        await _post(pool)
        now[0] = 2.0
        await _post(pool)
        pool.close()
    assert len(connections) == 2
