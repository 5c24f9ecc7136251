"""Forwarding one request to a replica, with failover.

The client's body bytes go upstream untouched and the replica's bytes come back untouched.
A failure before anything reached the client (connection error, 5xx, 429, a stream without
its first byte in time) is retried on another replica while attempts and the retry budget
last. Once a stream's first byte is sent the replica is committed: a later error ends the
stream, it is never replayed elsewhere, so no token is duplicated. The stream then ends with
an OpenAI error event (`data: {"error": ...}`, no `[DONE]`), as vLLM ends a stream its engine
fails, so a client (the openai library raises on it) never takes a cut answer for a whole one.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson

from inferplane.errors import error_body
from inferplane.gateway import errors
from inferplane.gateway.books.metrics import GatewayMetrics
from inferplane.gateway.gate import Gate
from inferplane.gateway.routing.balancer import Policy
from inferplane.gateway.routing.health import OutlierDetector
from inferplane.gateway.routing.registry import Replica, ReplicaRegistry
from inferplane.gateway.transport.asgi import Receive, Send
from inferplane.gateway.transport.client import Connection, Headers, UpstreamClosed
from inferplane.gateway.transport.retry import RetryBudget
from inferplane.gateway.transport.upstream import Upstream
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest

log = logging.getLogger(__name__)
Clock = Callable[[], float]
# The control plane's hook for a pool with no replica: start or wake one, wait (bounded) until
# it is routable, and say whether one is. Called only off the fast path.
OnEmptyPool = Callable[[str], Awaitable[bool]]
OnTtft = Callable[[str, float], None]  # (pool, seconds to the first byte of a stream)
RETRYABLE = frozenset({429, 500, 502, 503, 504})
UNHEALTHY = frozenset({500, 502, 504})  # 429 and 503 mean busy or draining, not broken
DROP_HEADERS = frozenset(
    {b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"date", b"server"}
)
CLIENT_CLOSED = 499  # the status recorded when the client hung up mid-stream
STREAM_BROKEN = 502  # the status recorded when the replica broke a stream after its first byte


@dataclass(frozen=True)
class ProxyConfig:
    first_token_timeout_s: float = 60.0
    total_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.first_token_timeout_s <= 0 or self.total_timeout_s <= 0:
            raise ValueError("first-token and total timeouts must be > 0 seconds")


@dataclass
class Call:
    """One request on its way through: what to send, where it was routed, and for whom."""

    path: bytes
    body: bytes
    stream: bool
    pool: str
    route: RouteRequest
    route_header: bytes
    reason: str
    extra_headers: bytes  # header lines for the replica, each ending in CRLF
    started: float
    receive: Receive
    replica: Replica | None = None
    ttft_s: float | None = None
    admitted: float = 0.0  # when the overload gate let it in (after any wait in its queue)
    committed: bool = False  # the response has started: no retry, no error body now
    ends_event: bool = True  # what reached the client so far ends with a whole stream event


@dataclass
class Failed:
    """An attempt that sent nothing to the client; `response` is kept to pass on if last."""

    reason: str
    timeout: bool = False
    response: tuple[int, Headers, bytes] | None = None


@dataclass
class Proxy:
    registry: ReplicaRegistry
    policies: Mapping[str, Policy]
    detector: OutlierDetector
    budget: RetryBudget
    upstream: Upstream
    metrics: GatewayMetrics
    config: ProxyConfig
    clock: Clock
    on_empty: OnEmptyPool | None = None
    on_ttft: OnTtft | None = None
    gate: Gate | None = None

    async def forward(self, call: Call, send: Send) -> int:
        """Send the call's response to the client; return the status it got. Under overload
        the gate holds it in a bounded queue first, or refuses it (503) at once."""
        if self.gate is None:
            return await self._forward(call, send)
        call.admitted = await self.gate.enter(call.pool, call.route)
        status = 0
        try:
            status = await self._forward(call, send)
        finally:
            ttft = None if call.ttft_s is None else call.ttft_s - (call.admitted - call.started)
            sharing = 1 if call.replica is None else call.replica.in_flight + 1
            self.gate.leave(call.pool, call.route, call.admitted, ttft, sharing, status == 200)
        return status

    async def _forward(self, call: Call, send: Send) -> int:
        self.budget.on_request()
        tried: set[str] = set()
        failed: Failed | None = None
        deadline = call.started + self.config.total_timeout_s
        for attempt in range(self.budget.config.max_attempts):
            if attempt and not self.budget.try_spend():
                break
            replica = self._pick(call, tried)
            if replica is None and not tried and self.on_empty is not None:
                # Scale from zero / promotion: hold the request while a replica comes up.
                replica = self._pick(call, tried) if await self.on_empty(call.pool) else None
            if replica is None:
                break
            if attempt:
                self.metrics.retries.labels(call.pool).inc()
            tried.add(replica.id)
            outcome = await self._attempt_on(replica, call, send, deadline)
            if not isinstance(outcome, Failed):
                return outcome
            failed = outcome
            if outcome.timeout:
                break
        return await self._give_up(call, send, failed, len(tried))

    def _pick(self, call: Call, tried: set[str]) -> Replica | None:
        snapshots = self._candidates(call.pool, frozenset(tried))
        if not snapshots and tried:  # the only replicas left were tried: one more go on them
            snapshots = self._candidates(call.pool, frozenset())
        if not snapshots:
            return None
        if self.gate is not None:  # the gate let it in for a free slot: use one
            snapshots = self.gate.with_room(snapshots)
        chosen = self.policies[call.pool].select(call.route, snapshots)
        return None if chosen is None else self.registry.get(call.pool, chosen)

    def _candidates(self, pool: str, exclude: frozenset[str]) -> list[ReplicaSnapshot]:
        ready = self.registry.snapshots(pool, exclude)
        if ready or self.registry.ready_count(pool):
            return ready
        return self.registry.panic_snapshots(pool, exclude)

    async def _attempt_on(
        self, replica: Replica, call: Call, send: Send, deadline: float
    ) -> int | Failed:
        call.replica = replica
        work = call.route.predicted_work
        replica.in_flight += 1
        replica.outstanding_work += work
        timer = _Deadline(max(deadline - self.clock(), 0.0))
        try:
            outcome = await self._attempt(replica, call, send)
        except asyncio.CancelledError:
            if not timer.expired_here():
                raise
            outcome = await _timed_out(call, send, self.config.total_timeout_s)
        finally:
            timer.cancel()
            replica.in_flight -= 1
            replica.outstanding_work -= work
        self._record(replica, outcome)
        return outcome

    def _record(self, replica: Replica, outcome: int | Failed) -> None:
        if isinstance(outcome, int):
            self.detector.success(replica)
        elif outcome.response is None or outcome.response[0] in UNHEALTHY:
            log.info("attempt on %s failed: %s", replica.id, outcome.reason)
            self.detector.failure(replica)

    async def _attempt(self, replica: Replica, call: Call, send: Send) -> int | Failed:
        pool = self.upstream.pool(replica.url)
        try:
            conn = await pool.acquire(self.upstream.config.connect_timeout_s)
        except (OSError, TimeoutError) as error:
            return Failed(f"cannot connect: {type(error).__name__} {error}")
        try:
            conn.send(pool.request_head(call.path, len(call.body), call.extra_headers), call.body)
            if call.stream:
                return await self._relay_stream(conn, replica, call, send)
            status, headers = await conn.read_head()
            return await self._relay_whole(conn, status, headers, replica, call, send)
        except UpstreamClosed as error:
            return Failed(str(error))
        finally:
            pool.release(conn)

    async def _relay_whole(  # noqa: PLR0917 (one private step of _attempt)
        self,
        conn: Connection,
        status: int,
        raw: Headers,
        replica: Replica,
        call: Call,
        send: Send,
    ) -> int | Failed:
        body = await conn.read_all()
        headers = _headers(raw, replica, call, len(body))
        if status in RETRYABLE:
            return Failed(f"upstream status {status}", response=(status, headers, body))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return status

    async def _relay_stream(
        self, conn: Connection, replica: Replica, call: Call, send: Send
    ) -> int | Failed:
        try:  # headers and the first chunk, both within the first-token timeout
            async with asyncio.timeout(self.config.first_token_timeout_s):
                status, raw = await conn.read_head()
                first = await conn.read_chunk() if status == 200 else b""
        except TimeoutError:
            conn.close()
            return Failed("no first byte within the first-token timeout")
        if status != 200:
            return await self._relay_whole(conn, status, raw, replica, call, send)
        if not first:
            return Failed("the stream ended before its first byte")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": _headers(raw, replica, call, None),
            }
        )
        call.committed = True
        await send({"type": "http.response.body", "body": first, "more_body": True})
        call.ttft_s = self.clock() - call.started
        replica.observe_ttft(call.ttft_s)
        if self.on_ttft is not None:
            self.on_ttft(call.pool, call.ttft_s)
        return await _pump(conn, replica, call, send)

    async def _give_up(self, call: Call, send: Send, failed: Failed | None, attempts: int) -> int:
        if failed is not None and failed.response is not None:
            status, headers, body = failed.response
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return status
        if failed is None:
            raise errors.no_healthy_replica(call.pool)
        if failed.timeout:
            raise errors.upstream_timeout(
                f"no complete answer within {self.config.total_timeout_s:g}s"
            )
        raise errors.upstream_failed(attempts, failed.reason)


class _Deadline:
    """asyncio.timeout's job at a third of its cost (it runs for every request): cancel the
    current task after `delay_s`, and tell that cancellation from anyone else's."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task")

    def __init__(self, delay_s: float) -> None:
        task = asyncio.current_task()
        assert task is not None, "a deadline is set from inside a task"
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        self._handle = asyncio.get_running_loop().call_later(delay_s, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def expired_here(self) -> bool:
        """On a CancelledError: True if this deadline caused it (and only it), which is then
        taken back, as asyncio.timeout does."""
        return self._expired and self._task.uncancel() <= self._cancelling

    def cancel(self) -> None:
        self._handle.cancel()


async def _timed_out(call: Call, send: Send, limit_s: float) -> int | Failed:
    if not call.committed:
        return Failed("total timeout", timeout=True)
    message = f"the answer was not complete within {limit_s:g}s"
    await send(_last_event(stream_error(504, message, "upstream_timeout"), call.ends_event))
    return 504


async def _pump(conn: Connection, replica: Replica, call: Call, send: Send) -> int:
    """Chunks through as they come; a client hang-up closes the upstream connection too."""
    watcher = asyncio.create_task(_wait_disconnect(call.receive, conn))
    status, tail = 200, b""
    try:
        while chunk := await conn.read_chunk():
            call.ends_event = chunk.endswith(b"\n\n")
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamClosed as error:
        status = CLIENT_CLOSED if watcher.done() else STREAM_BROKEN
        if status == STREAM_BROKEN:
            log.warning("stream from %s broke after its first byte: %s", replica.id, error)
            message = "the replica's stream broke before its end; retry the request"
            tail = stream_error(502, message, "upstream_stream_broken")
    finally:
        watcher.cancel()
    await send(_last_event(tail, call.ends_event))
    return status


def stream_error(status: int, message: str, code: str) -> bytes:
    """An OpenAI error as a stream's last event."""
    return b"data: " + orjson.dumps(error_body(status, message, code=code)) + b"\n\n"


def _last_event(event: bytes, after_whole_event: bool) -> dict[str, object]:
    # a cut event is ended first, so the error is an event of its own
    body = event if not event or after_whole_event else b"\n\n" + event
    return {"type": "http.response.body", "body": body, "more_body": False}


def _headers(raw: Headers, replica: Replica, call: Call, length: int | None) -> Headers:
    headers = [(k, v) for k, v in raw if k.lower() not in DROP_HEADERS]
    headers.append((b"x-inferplane-route", call.route_header))
    headers.append((b"x-inferplane-replica", replica.id.encode()))
    if length is not None:
        headers.append((b"content-length", b"%d" % length))
    return headers


async def _wait_disconnect(receive: Receive, conn: Connection) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    conn.close()
