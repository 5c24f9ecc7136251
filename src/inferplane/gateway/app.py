"""The gateway's ASGI app: a small hand-written dispatcher, because every microsecond on the
proxy path is paid on every request (no framework routing, no request objects, no re-encoding).

An inference request is: authenticate -> read the body (size limit) -> parse it once for what
routing needs -> authorize and rate-limit -> rules pick a pool (and name the rule) -> the proxy
picks a replica and forwards the original bytes. Every answer carries x-inferplane-route.
"""

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from inferplane.gateway.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    respond_error,
)
from inferplane.gateway.errors import GatewayError
from inferplane.gateway.metrics import UNKNOWN
from inferplane.gateway.proxy import Call
from inferplane.gateway.request import parse_request
from inferplane.gateway.state import GatewayState
from inferplane.gateway.types import RequestTask

log = logging.getLogger(__name__)
access = logging.getLogger("inferplane.gateway.access")
TASKS: dict[str, RequestTask] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
    "/v1/embeddings": "embedding",
}
TEXT = b"text/plain; version=0.0.4; charset=utf-8"


class GatewayApp:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._models_body = _models_body(state.models)

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
        elif method in ("GET", "HEAD") and path in _PROBES:
            await self._probe(path, send)
        else:
            status = 405 if task is not None or path in _PROBES else 404
            message = f"{method} {path} is not served here"
            await respond_error(send, GatewayError(status, message, code="not_found"))

    async def _probe(self, path: str, send: Send) -> None:
        if path == "/v1/models":
            await respond(send, 200, self._models_body)
        elif path == "/metrics":
            await respond(send, 200, self.state.metrics.render(), TEXT)
        elif path == "/health":
            await respond(send, 200, b'{"status":"ok"}')
        elif self.state.any_ready():
            await respond(send, 200, b'{"status":"ready"}')
        else:
            await respond(send, 503, b'{"status":"no ready replica"}')

    async def _inference(
        self, scope: Scope, receive: Receive, send: Send, path: str, task: RequestTask
    ) -> None:
        state = self.state
        started = state.clock()
        call: Call | None = None
        model = UNKNOWN
        try:
            headers = _headers(scope)
            key = state.access.authenticate(headers)
            body = await read_body(receive, state.settings.max_body_bytes)
            parsed = parse_request(body, task, headers, state.wants_prefix)
            model = parsed.model if parsed.model in state.access.models else UNKNOWN
            route = state.access.admit(key, parsed)
            call = Call(
                path=path.encode(),
                body=body,
                stream=parsed.stream,
                pool=route.pool,
                route=route.request,
                route_header=route.header,
                reason=route.reason,
                extra_headers=_upstream_headers(headers),
                started=started,
                receive=receive,
            )
            state.metrics.decided(route.rule)
            status = await state.proxy.forward(call, send)
        except GatewayError as error:
            status = error.status
            await respond_error(send, error, None if call is None else call.route_header)
        except ClientGone:
            status = 499
        self._account(model, call, status, started)

    def _account(self, model: str, call: Call | None, status: int, started: float) -> None:
        state = self.state
        pool = "" if call is None else call.pool
        state.metrics.observe(model, pool, status, state.clock() - started)
        if call is not None and call.ttft_s is not None:
            state.metrics.ttft.labels(model, pool).observe(call.ttft_s)
        if state.settings.access_log:
            replica = "-" if call is None or call.replica is None else call.replica.id
            reason = "-" if call is None else call.reason
            access.info("%s %d route=%s replica=%s", model, status, reason, replica)

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


def _upstream_headers(headers: Mapping[str, str]) -> bytes:
    """What the replica needs: the content type, and the request id for tracing."""
    request_id = headers.get("x-request-id")
    if request_id is None:
        return _JSON_HEADER
    return _JSON_HEADER + b"x-request-id: " + request_id.encode("latin-1") + b"\r\n"


def _models_body(models: list[str]) -> bytes:
    data: list[dict[str, Any]] = [
        {"id": name, "object": "model", "created": 0, "owned_by": "inferplane"} for name in models
    ]
    return orjson.dumps({"object": "list", "data": data})
