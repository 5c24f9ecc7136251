"""The gateway's ASGI app: a small hand-written dispatcher, because every microsecond on the
proxy path is paid on every request (no framework routing, no request objects, no re-encoding).

An inference request is: authenticate -> read the body (size limit) -> parse it once for what
routing needs -> authorize and rate-limit -> rules pick a pool (and name the rule) -> budgets
-> the proxy picks a replica and forwards the original bytes -> the books note what it used.
Every answer carries x-request-id (the client's, or ours) and x-inferplane-route; the route
reason is logged (DEBUG, or INFO with --access-log) and counted. Tracing costs nothing unless
it is on or the client sent a traceparent.
"""

import itertools
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

import orjson

from inferplane.gateway.admission.auth import ApiKey
from inferplane.gateway.books.accounting import Finished
from inferplane.gateway.books.feedback import FeedbackRefused
from inferplane.gateway.books.metrics import UNKNOWN
from inferplane.gateway.books.tap import ResponseTap, Usage, usage_of
from inferplane.gateway.errors import GatewayError
from inferplane.gateway.proxy import CLIENT_CLOSED, Call
from inferplane.gateway.state import GatewayState
from inferplane.gateway.transport.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    respond_error,
)
from inferplane.gateway.transport.request import ParsedRequest, parse_request
from inferplane.gateway.types import RequestTask
from inferplane.ledger.budgets import Decision
from inferplane.ledger.regenerations import prompt_digest
from inferplane.telemetry.tracing import RequestAttributes, record

log = logging.getLogger(__name__)
access = logging.getLogger("inferplane.gateway.access")
routes = logging.getLogger("inferplane.gateway.route")  # one line per routing decision
MAX_REQUEST_ID = 128  # a client's x-request-id longer than this is replaced by ours
TASKS: dict[str, RequestTask] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
    "/v1/embeddings": "embedding",
}
TEXT = b"text/plain; version=0.0.4; charset=utf-8"
FEEDBACK_PATH = "/v1/feedback"
FEEDBACK_BODY_BYTES = 16 << 10


class GatewayApp:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._models_body = _models_body(state.models, int(time.time()))
        # Request ids: a random prefix per app and a counter; unique without a syscall.
        self._id_prefix = secrets.token_hex(6)
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        task = TASKS.get(path)
        if task is not None and method == "POST":
            await self._inference(scope, receive, send, path, task)
        elif path == FEEDBACK_PATH and method == "POST":
            await self._feedback(scope, receive, send)
        elif method in ("GET", "HEAD") and path in _PROBES:
            await self._probe(path, send)
        else:
            known = task is not None or path in _PROBES or path == FEEDBACK_PATH
            status = 405 if known else 404
            message = f"{method} {path} is not served here"
            await respond_error(send, GatewayError(status, message, code="not_found"))

    async def _probe(self, path: str, send: Send) -> None:
        if path == "/v1/models":
            await respond(send, 200, self._models_body)
        elif path == "/metrics":
            await respond(send, 200, await self.state.render_metrics(), TEXT)
        elif path == "/health":
            await respond(send, 200, b'{"status":"ok"}')
        elif self.state.any_ready():
            await respond(send, 200, b'{"status":"ready"}')
        else:
            await respond(send, 503, b'{"status":"no ready replica"}')

    async def _feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /v1/feedback: the caller's key, then the book stores what it says."""
        state = self.state
        try:
            key = state.access.authenticate(_headers(scope))
            body = await read_body(receive, FEEDBACK_BODY_BYTES)
            await respond(send, 200, state.feedback.submit(key, body))
        except FeedbackRefused as refused:
            error = GatewayError(
                refused.status, refused.message, param=refused.param, code=refused.code
            )
            await respond_error(send, error)
        except GatewayError as error:
            await respond_error(send, error)
        except ClientGone:
            return

    async def _inference(
        self, scope: Scope, receive: Receive, send: Send, path: str, task: RequestTask
    ) -> None:
        state = self.state
        headers = _headers(scope)
        request = _Request(self._request_id(headers), state.clock(), send)
        try:
            request.key = state.access.authenticate(headers)
            body = await read_body(receive, state.settings.max_body_bytes)
            request.body = body  # its digest goes in the usage record (regenerations)
            parsed = request.parsed = parse_request(body, task, headers, state.wants_prefix)
            if parsed.model in state.access.models:
                request.model = parsed.model
            route = state.access.admit(request.key, parsed)
            self._check_budget(request, route.pool)
            call = request.call = Call(
                path=path.encode(),
                body=body,
                stream=parsed.stream,
                pool=route.pool,
                route=route.request,
                route_header=route.header,
                reason=route.reason,
                extra_headers=_upstream_headers(request.id),
                started=request.started,
                receive=receive,
            )
            state.metrics.decided(route.rule)
            self._log_decision(request, route.rule)
            state.accountant.begin(request.id, request.started)
            request.status = await self._forward(request, call, headers)
        except GatewayError as error:
            request.status = error.status
            route_header = None if request.call is None else request.call.route_header
            await respond_error(request.tap.send, error, route_header)
        except ClientGone:
            request.status = 499
        self._account(request)

    def _request_id(self, headers: Mapping[str, str]) -> str:
        given = headers.get("x-request-id")
        if given and len(given) <= MAX_REQUEST_ID and given.isprintable():
            return given
        return f"{self._id_prefix}-{next(self._ids)}"

    def _check_budget(self, request: "_Request", pool: str) -> None:
        accountant = self.state.accountant
        key = request.key
        if key is None or not accountant.has_budget(key):
            return
        decision = accountant.admit(request.id, key, pool)
        if decision.exceeded is not None:
            raise budget_error(decision)
        if decision.warnings:
            request.tap.extra.append((b"x-budget-warning", _header_value(decision)))

    async def _forward(self, request: "_Request", call: Call, headers: Mapping[str, str]) -> int:
        """The proxy's answer; inside a span only when tracing is on or the client traces."""
        tracing = self.state.tracing
        if not tracing.enabled and "traceparent" not in headers:
            return await self.state.proxy.forward(call, request.tap.send)
        attributes = RequestAttributes(
            model=request.model, pool=call.pool, route=call.reason, request_id=request.id
        )
        with tracing.span("gateway " + call.path.decode(), attributes, headers) as span:
            call.extra_headers += tracing.header_lines(span)
            status = await self.state.proxy.forward(call, request.tap.send)
            usage = request.usage()
            record(span, _outcome(call, status, usage))
            return status

    def _log_decision(self, request: "_Request", rule: str) -> None:
        level = logging.INFO if self.state.settings.access_log else logging.DEBUG
        if not routes.isEnabledFor(level):
            return
        call = request.call
        assert call is not None
        fields = {"request_id": request.id, "model": request.model, "pool": call.pool}
        routes.log(level, "route %s", call.reason, extra=fields | {"rule": rule})

    def _account(self, request: "_Request") -> None:
        state = self.state
        call = request.call
        pool = "" if call is None else call.pool
        state.metrics.observe(request.model, pool, request.status, state.clock() - request.started)
        if call is not None and call.ttft_s is not None:
            state.metrics.ttft.labels(request.model, pool).observe(call.ttft_s)
        if call is None or call.replica is None:
            state.accountant.abandon(request.id)
        else:
            self._finish(request, call, call.replica.id)
        if state.settings.access_log:
            replica = "-" if call is None or call.replica is None else call.replica.id
            reason = "-" if call is None else call.reason
            access.info(
                "%s %d route=%s replica=%s",
                request.model,
                request.status,
                reason,
                replica,
                extra={"request_id": request.id},
            )

    def _finish(self, request: "_Request", call: Call, replica: str) -> None:
        state = self.state
        key, parsed = request.key, request.parsed
        assert key is not None and parsed is not None
        usage = request.usage() or Usage(0, 0)
        done = Finished(
            request_id=request.id,
            key=key,
            user=parsed.user,
            model=request.model,
            pool=call.pool,
            replica=replica,
            model_version=request.tap.model_version,
            started=request.started,
            ended=state.clock(),
            ttft_s=call.ttft_s,
            status=request.status,
            usage=usage,
            prompt_hash=prompt_digest(request.body),
        )
        state.accountant.finish(done)
        abandoned = parsed.stream and request.status == CLIENT_CLOSED
        state.feedback.served(
            request.id, key, parsed.user, request.model, done.model_version, abandoned, call.pool
        )
        state.quality.answered(request.model, done.model_version, call.pool, request.usage())
        if parsed.task != "embedding":
            state.drift.sample(request.model, done.model_version, call.body)
        if key.tokens_per_minute is not None:
            estimated = parsed.est_prompt_tokens + parsed.max_tokens
            state.access.limiter.settle(key, estimated, usage.total)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.state.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.state.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


_PROBES = frozenset({"/v1/models", "/metrics", "/health", "/ready"})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


_JSON_HEADER = b"content-type: application/json\r\n"


def _upstream_headers(request_id: str) -> bytes:
    """What the replica needs: the content type, and the request id for its logs."""
    return _JSON_HEADER + b"x-request-id: " + request_id.encode("latin-1") + b"\r\n"


def budget_error(decision: Decision) -> GatewayError:
    exceeded = decision.exceeded
    assert exceeded is not None
    return GatewayError(
        429,
        exceeded.message,
        code="budget_exceeded",
        headers=decision.headers(),
        kind="budget_exceeded",
    )


def _header_value(decision: Decision) -> bytes:
    return decision.headers()["X-Budget-Warning"].encode("latin-1", "replace")


def _outcome(call: Call, status: int, usage: Usage | None) -> RequestAttributes:
    return RequestAttributes(
        replica=None if call.replica is None else call.replica.id,
        prompt_tokens=None if usage is None else usage.prompt_tokens,
        completion_tokens=None if usage is None else usage.completion_tokens,
        ttft_s=call.ttft_s,
        status=status,
    )


class _Request:
    """One inference request's state while the app serves it."""

    __slots__ = (
        "_usage",
        "body",
        "call",
        "id",
        "key",
        "model",
        "parsed",
        "started",
        "status",
        "tap",
    )

    def __init__(self, request_id: str, started: float, send: Send) -> None:
        self.id = request_id
        self.started = started
        self.tap = ResponseTap(send, request_id.encode("latin-1"))
        self.key: ApiKey | None = None
        self.parsed: ParsedRequest | None = None
        self.call: Call | None = None
        self.model = UNKNOWN
        self.status = 0
        self.body = b""
        self._usage: Usage | bool | None = False  # False: not read from the answer yet

    def usage(self) -> Usage | None:
        """The usage of the answer (parsed once)."""
        if self._usage is False:
            parsed = self.parsed
            stream = parsed is not None and parsed.stream
            estimate = 0 if parsed is None else parsed.est_prompt_tokens
            self._usage = usage_of(self.tap, stream, estimate)
        return self._usage if isinstance(self._usage, Usage) else None


def _models_body(models: list[str], created: int) -> bytes:
    """`/v1/models`; `created`: when this gateway started (OpenAI gives a unix time there)."""
    data: list[dict[str, Any]] = [
        {"id": name, "object": "model", "created": created, "owned_by": "inferplane"}
        for name in models
    ]
    return orjson.dumps({"object": "list", "data": data})
