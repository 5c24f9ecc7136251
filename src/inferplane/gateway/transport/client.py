"""A lean HTTP/1.1 client for the proxy path: keep-alive connection pools per replica, the
request written in one syscall, the response parsed by httptools (C) with body bytes handed
over as they arrive. It does only what forwarding needs (POST with a byte body, status,
raw headers, whole or streamed body), which makes it several times cheaper per request than a
general client; health checks and scrapes use aiohttp, where generality costs nothing.
"""

import asyncio
import collections
import ssl
import urllib.parse
from collections.abc import Callable
from typing import cast

import httptools

Headers = list[tuple[bytes, bytes]]
Clock = Callable[[], float]
HIGH_WATER = 1 << 18  # bytes buffered from a replica before reading pauses (slow client)
PIECE = 1 << 14  # most bytes read_chunk hands over at once


class UpstreamClosed(ConnectionError):
    """The replica closed the connection (or sent bytes that are not HTTP) mid-response."""


class Connection(asyncio.Protocol):
    """One keep-alive connection, one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.error: Exception | None = None
        self._headers_done = False
        self._wake: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # TCP: always a Transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamClosed(f"malformed HTTP from the replica: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            self._fail(UpstreamClosed("the replica closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self._headers_done = True
        self._notify()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._notify()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._notify()

    def _fail(self, error: Exception) -> None:
        self.error = error
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _wait(self) -> None:
        if self.error is not None:
            raise self.error
        self._wake = asyncio.get_running_loop().create_future()
        await self._wake
        self._wake = None
        if self.error is not None and not self.chunks:
            raise self.error

    # the request side
    def send(self, head: bytes, body: bytes) -> None:
        self._reset()
        if self.transport is None or self.closed:
            raise UpstreamClosed("the connection is closed")
        self.transport.write(head + body)

    async def read_head(self) -> tuple[int, Headers]:
        while not self._headers_done:
            await self._wait()
        return self.status, self.headers

    async def read_chunk(self) -> bytes:
        """The next body bytes as they came (at most PIECE of them); b"" once the body is
        complete.

        A replica cuts off a reader that takes nothing for its stall timeout, so a slow
        client's stream must keep reading from its replica at the client's own pace: the
        bytes go to the client in pieces (the proxy comes back for the next as soon as the
        client has taken some, not once it has taken everything buffered here), and reading
        from the replica resumes whenever a piece left, not once half the buffer has."""
        while not self.chunks:
            if self.complete:
                return b""
            await self._wait()
        one = len(self.chunks) == 1 and len(self.chunks[0]) <= PIECE  # the usual case
        chunk = self.chunks.popleft() if one else self._piece()
        self.buffered -= len(chunk)
        if self.transport is not None and self.buffered < HIGH_WATER:
            self.transport.resume_reading()
        return chunk

    def _piece(self) -> bytes:
        """Up to PIECE bytes off the front of the buffer."""
        parts: list[bytes] = []
        size = 0
        while self.chunks and size < PIECE:
            part = self.chunks.popleft()
            if size + len(part) > PIECE:
                self.chunks.appendleft(part[PIECE - size :])
                part = part[: PIECE - size]
            parts.append(part)
            size += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _drain(self) -> bytes:
        chunk = b"".join(self.chunks)
        self.chunks.clear()
        return chunk

    async def read_all(self) -> bytes:
        while not self.complete:
            await self._wait()
        body = self._drain()
        self.buffered = 0
        return body

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections to one host:port (last used first: the warmest)."""

    def __init__(
        self, url: str, keepalive_s: float, clock: Clock, tls: ssl.SSLContext | None = None
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.tls = tls if parsed.scheme == "https" else None
        self.base = parsed.path.rstrip("/").encode()  # a replica mounted under a path prefix
        self.keepalive_s = keepalive_s
        self.clock = clock
        self.idle: list[Connection] = []
        self.host_header = parsed.netloc.encode()

    async def acquire(self, connect_timeout_s: float) -> Connection:
        now = self.clock()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout_s):
            _, conn = await loop.create_connection(Connection, self.host, self.port, ssl=self.tls)
        return conn

    def release(self, conn: Connection) -> None:
        """Back to the pool if the response was read whole and the replica keeps it open."""
        if conn.complete and conn.keep_alive and not conn.closed:
            conn.idle_since = self.clock()
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    def request_head(self, path: bytes, length: int, extra: bytes) -> bytes:
        return b"POST %s%s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n%s\r\n" % (
            self.base,
            path,
            self.host_header,
            length,
            extra,
        )
