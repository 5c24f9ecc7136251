"""Backpressure towards clients, for the model server and the gateway alike: a bounded send
buffer per connection, and a cut-off for a client that stops reading.

uvicorn stops a response's writer once the connection's unsent bytes pass the transport's high
water mark, and waits for the client to read them. A streaming client that never reads would
so hold its request as long as it keeps the connection open: on a replica its place in the
engine's batch and its KV blocks, in the gateway its overload-gate slot and in-flight count
(and, once the proxy stops reading from the replica, the replica's request). Here a
connection's unsent bytes are bounded by `buffer_bytes` (its socket's kernel buffer, then the
process's write buffer), and a connection whose writes stay paused for `stall_timeout_s`
without the client taking a byte is aborted: uvicorn then reports the request as
disconnected, which cancels its response; on a replica the response's end aborts its engine
requests, in the gateway the proxy closes its upstream connection and the replica does so.
"""

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
import termios
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)
RESUME_AFTER = 1 << 14  # bytes a paused client takes before its response's writer resumes
# Behind a gateway, a slow client's gateway reads from its replica in bursts, with gaps that
# grow as the client slows; the gateway judges its own clients (10 s), and its cut-off closes
# the replica's stream, so a replica waits longer before it judges its gateway.
REPLICA_STALL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StreamLimits:
    """How much a client may leave unread, and for how long."""

    # Unsent bytes a connection may hold: the kernel's send buffer of its socket (which Linux
    # doubles for its bookkeeping, and would otherwise grow to 4 MiB) and, past that, this
    # process's write buffer before the response's writer pauses. A token event is a few
    # hundred bytes; the bound also caps one connection's throughput at about twice this per
    # round trip (10 MiB/s at 50 ms).
    buffer_bytes: int = 256 * 1024
    # A connection paused this long without the client reading anything is cut off (the
    # gateway's default; a replica's is longer: REPLICA_STALL_TIMEOUT_S).
    stall_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.buffer_bytes < 1024:
            raise ValueError(f"stream buffer must be at least 1024 bytes, got {self.buffer_bytes}")
        if self.stall_timeout_s <= 0:
            raise ValueError(f"stall timeout must be > 0 seconds, got {self.stall_timeout_s}")


class StallGuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits` applied; `with_limits` makes a subclass with
    other limits, to pass as uvicorn's Config(http=...)."""

    limits: ClassVar[StreamLimits] = StreamLimits()
    _stall: asyncio.TimerHandle | None = None
    _unsent = 0  # bytes waiting when the stall timer was (re)armed
    _fd: int | None = None  # the socket's, to read its send queue

    @classmethod
    def with_limits(cls, limits: StreamLimits) -> type["StallGuardedProtocol"]:
        return type(cls.__name__, (cls,), {"limits": limits})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The writer resumes once the client took RESUME_AFTER bytes (not three quarters of
        # the buffer, asyncio's default): a proxied stream then goes back to its replica for
        # more at the client's own pace, and the replica, which cuts off a reader that takes
        # nothing for its stall timeout, sees a slow client's gateway reading.
        high = self.limits.buffer_bytes
        self.transport.set_write_buffer_limits(high=high, low=max(high // 2, high - RESUME_AFTER))
        sock = transport.get_extra_info("socket")
        if sock is not None:  # the kernel's share too: unbounded, it grows to megabytes
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.buffer_bytes)
                self._fd = sock.fileno()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._arm()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._unsent = self._unsent_bytes()
        self._stall = self.loop.call_later(self.limits.stall_timeout_s, self._check)

    def _disarm(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _unsent_bytes(self) -> int:
        """Bytes the client has not taken: this process's buffer and the socket's send queue
        (the kernel's queue moves as soon as the client reads; this process's buffer only
        once the kernel has room for a good part of it)."""
        unsent = self.transport.get_write_buffer_size()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                queued = fcntl.ioctl(self._fd, termios.TIOCOUTQ, b"\0" * 4)
                unsent += struct.unpack("i", queued)[0]
        return unsent

    def _check(self) -> None:
        # A slow reader still takes bytes (the buffer shrinks): it keeps its connection.
        if self._unsent_bytes() < self._unsent:
            self._arm()
            return
        self._stall = None
        log.info(
            "cutting off a client that read nothing for %.1f s (%d bytes unsent)",
            self.limits.stall_timeout_s,
            self._unsent,
        )
        self.transport.abort()  # connection_lost follows: the request reads as disconnected
