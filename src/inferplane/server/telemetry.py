"""Per-request telemetry of the model server: the request counter, one trace span and one
completion log line per API request.

`RequestTelemetryMiddleware` wraps every API route. It reads the caller's `x-request-id` and
W3C `traceparent`, binds the request id to the log context (`request_scope`), opens a server
span joined to the caller's trace (only when tracing is on), and at completion counts the
request, finishes the span with what the route recorded (`Outcome`: tokens, TTFT) and logs one
INFO line. All of it runs once per request, never per token.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inferplane.server.drain import GUARDED_PREFIXES
from inferplane.server.metrics import ServerMetrics
from inferplane.server.streaming import STREAM_STATUS
from inferplane.telemetry.logging import request_scope
from inferplane.telemetry.tracing import RequestAttributes, Tracing, record

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = b"x-request-id"
TRACE_HEADERS = (b"traceparent", b"tracestate")
# A client's request id is echoed in a response header and written to logs: keep it tame.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
SPAN_NAMES = {
    "/v1/chat/completions": "chat.completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/predict": "predict",
}


@dataclass(frozen=True)
class Outcome:
    """What a route learned about its request, for the span and the completion log."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None


def request_id(request: Request, generated: str) -> str:
    """The id to answer with: the client's x-request-id when it sent a usable one."""
    state = request.scope.setdefault("state", {})
    chosen: str = state.get("client_request_id") or generated
    state["request_id"] = chosen
    return chosen


def record_outcome(request: Request, outcome: Outcome) -> None:
    request.scope.setdefault("state", {})["outcome"] = outcome


def _client_ids(scope: Scope) -> tuple[str | None, dict[str, str] | None]:
    """The client's request id, and its trace headers (None when it sent none)."""
    client_id, trace = None, None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            client_id = text if _SAFE_ID.match(text) else None
        elif name in TRACE_HEADERS:
            trace = trace or {}
            trace[name.decode("latin-1")] = value.decode("latin-1")
    return client_id, trace


class RequestTelemetryMiddleware:
    """inference_request_total{model,status}, a span and a log line for every API request,
    errors included (it sits outside the middlewares that refuse requests)."""

    def __init__(
        self, app: ASGIApp, metrics: ServerMetrics, tracing: Tracing, clock: Callable[[], float]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        client_id, trace = _client_ids(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["client_request_id"] = client_id
        with request_scope(client_id):
            if self.tracing.enabled:
                path: str = scope["path"]
                name = SPAN_NAMES.get(path) or path
                with self.tracing.span(name, headers=trace) as span:
                    status = await self._serve(scope, receive, send)
                    record(span, _attributes(state, status))
            else:
                status = await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        started, status = self.clock(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._completed(scope["state"], status, self.clock() - started)
        return status

    def _completed(self, state: dict[str, Any], status: int, duration_s: float) -> None:
        status = state.get(STREAM_STATUS, status)  # a stream that failed after its 200
        model = str(state.get("model_label", "unknown"))[:64]
        self.metrics.count_request(model, status)
        if not log.isEnabledFor(logging.INFO):
            return
        outcome: Outcome = state.get("outcome") or Outcome()
        with request_scope(state.get("request_id") or state.get("client_request_id"), model):
            fields = {
                "status": status,
                "prompt_tokens": outcome.prompt_tokens,
                "completion_tokens": outcome.completion_tokens,
                "ttft_ms": _ms(outcome.ttft_s),
                "duration_ms": _ms(duration_s),
            }
            log.info("request completed", extra={k: v for k, v in fields.items() if v is not None})


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _attributes(state: dict[str, Any], status: int) -> RequestAttributes:
    outcome: Outcome = state.get("outcome") or Outcome()
    return RequestAttributes(
        model=state.get("model_label"),
        request_id=state.get("request_id") or state.get("client_request_id"),
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        ttft_s=outcome.ttft_s,
        status=status,
    )
