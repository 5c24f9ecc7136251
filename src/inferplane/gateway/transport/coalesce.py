"""One write per response: uvicorn's HTTP protocol with the writes of one loop turn joined.

uvicorn writes a response's head and its body with two transport.write() calls, and on
uvloop each is a send() system call and a TCP segment of its own; for the gateway's small
answers the second syscall was a quarter of the process's time. Here the protocol gets a
transport whose writes are held until the end of the current turn of the event loop and go
out as one. Nothing waits longer than that turn: a stream's chunks still leave as they come.
The protocol also bounds what a client may leave unread (inferplane.http.backpressure).
"""

import asyncio
from typing import Any

from inferplane.http.backpressure import StallGuardedProtocol


class CoalescingTransport:
    """Wraps a transport: write() within one loop turn becomes one write of the whole."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, lines: list[bytes]) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()  # what was written before close() still goes out, as on any transport
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(StallGuardedProtocol):
    """uvicorn's httptools protocol over a CoalescingTransport, stalled readers cut off; pass
    it (or `with_limits(...)` of it) as Config(http=...)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)  # type: ignore[arg-type]
