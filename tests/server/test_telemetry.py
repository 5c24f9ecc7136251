"""Per-request telemetry on the real app and engine: a span joined to the caller's trace with
the request's attributes, the caller's request id echoed, one JSON log line at completion."""

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from inferplane.server.app import create_app
from inferplane.server.state import ServerState
from inferplane.telemetry.logging import JsonFormatter
from inferplane.telemetry.tracing import (
    ATTR_COMPLETION_TOKENS,
    ATTR_MODEL,
    ATTR_PROMPT_TOKENS,
    ATTR_REQUEST_ID,
    ATTR_STATUS,
    ATTR_TTFT,
    setup_tracing,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    state: ServerState, spans: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    state.tracing = setup_tracing("inferplane-replica", env={}, exporter=spans)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        yield client


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("inferplane.server.telemetry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def _only_span(spans: InMemorySpanExporter) -> ReadableSpan:
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    return span


async def test_a_chat_span_joins_the_callers_trace(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 4, "ignore_eos": True}
    headers = {"traceparent": TRACEPARENT, "x-request-id": "req-42"}
    response = await traced.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42"
    span = _only_span(spans)
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert span.kind == SpanKind.SERVER
    assert span.name == "chat.completions"
    assert span.resource.attributes["service.name"] == "inferplane-replica"
    attributes = span.attributes or {}
    assert attributes[ATTR_MODEL] == "tiny"
    assert attributes[ATTR_REQUEST_ID] == "req-42"
    assert attributes[ATTR_PROMPT_TOKENS] == response.json()["usage"]["prompt_tokens"]
    assert attributes[ATTR_COMPLETION_TOKENS] == 4
    ttft = attributes[ATTR_TTFT]
    assert isinstance(ttft, float)
    assert 0 < ttft <= float(response.headers["x-inference-time-ms"])
    assert attributes[ATTR_STATUS] == 200


async def test_a_streamed_completion_span_carries_ttft_and_tokens(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    body = {"model": "tiny", "prompt": "hi", "max_tokens": 3, "ignore_eos": True, "stream": True}
    response = await traced.post("/v1/completions", json=body)
    assert response.status_code == 200
    span = _only_span(spans)
    attributes = span.attributes or {}
    assert span.name == "completions"
    assert span.parent is None  # no caller trace: a new one starts here
    assert attributes[ATTR_COMPLETION_TOKENS] == 3
    ttft = attributes[ATTR_TTFT]
    assert isinstance(ttft, float) and ttft > 0
    # Without a client id, the response's own id is the request id, in header and span alike.
    assert attributes[ATTR_REQUEST_ID] == response.headers["x-request-id"]
    assert response.headers["x-request-id"].startswith("cmpl-")


async def test_refused_requests_are_traced_with_their_status(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    body = {"model": "nope", "messages": HELLO}
    response = await traced.post("/v1/chat/completions", json=body)
    assert response.status_code == 404
    assert (_only_span(spans).attributes or {})[ATTR_STATUS] == 404


async def test_one_json_line_per_request_at_completion(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 2, "ignore_eos": True}
    headers = {"x-request-id": "abc-1"}
    response = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert response.headers["x-request-id"] == "abc-1"
    (line,) = log_lines.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "request completed"
    assert entry["level"] == "info"
    assert entry["request_id"] == "abc-1"
    assert entry["model"] == "tiny"
    assert entry["status"] == 200
    assert entry["completion_tokens"] == 2
    assert entry["prompt_tokens"] > 0
    assert 0 < entry["ttft_ms"] <= entry["duration_ms"]


async def test_an_unsafe_client_request_id_is_replaced(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 1}
    response = await client.post(
        "/v1/chat/completions", json=body, headers={"x-request-id": "x" * 500}
    )
    assert response.headers["x-request-id"].startswith("chatcmpl-")
    assert json.loads(log_lines.getvalue())["request_id"] == response.headers["x-request-id"]
