"""A gateway span's context travels in W3C headers; the replica's span joins its trace."""

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from inferplane.telemetry.tracing import (
    ATTR_COMPLETION_TOKENS,
    ATTR_MODEL,
    ATTR_POOL,
    ATTR_REPLICA,
    ATTR_TTFT,
    RequestAttributes,
    otlp_endpoint,
    record,
    setup_tracing,
)

CLIENT_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_gateway_and_replica_spans_share_one_trace() -> None:
    gateway_spans, replica_spans = InMemorySpanExporter(), InMemorySpanExporter()
    gateway = setup_tracing("gateway", env={}, exporter=gateway_spans)
    replica = setup_tracing("replica", env={}, exporter=replica_spans)
    upstream_headers: dict[str, str] = {}
    with gateway.span("chat", RequestAttributes(model="chat-small", pool="primary")) as request:
        with gateway.span("attempt", kind=SpanKind.CLIENT) as attempt:
            gateway.inject(upstream_headers)
            record(attempt, RequestAttributes(replica="primary/127.0.0.1:8001"))
        with replica.span("chat.completions", headers=upstream_headers) as served:
            record(served, RequestAttributes(completion_tokens=12, ttft_s=0.04))
    (served_span,) = replica_spans.get_finished_spans()
    attempt_span, request_span = gateway_spans.get_finished_spans()
    assert "traceparent" in upstream_headers
    assert served_span.context.trace_id == request_span.context.trace_id
    assert served_span.parent is not None
    assert served_span.parent.span_id == attempt_span.context.span_id
    assert attempt_span.parent is not None
    assert attempt_span.parent.span_id == request.get_span_context().span_id
    assert request_span.attributes is not None and served_span.attributes is not None
    assert request_span.attributes[ATTR_MODEL] == "chat-small"
    assert request_span.attributes[ATTR_POOL] == "primary"
    assert attempt_span.attributes is not None
    assert attempt_span.attributes[ATTR_REPLICA] == "primary/127.0.0.1:8001"
    assert served_span.attributes[ATTR_COMPLETION_TOKENS] == 12
    assert served_span.attributes[ATTR_TTFT] == 0.04
    assert served_span.resource.attributes["service.name"] == "replica"


def test_a_clients_traceparent_is_continued() -> None:
    spans = InMemorySpanExporter()
    tracing = setup_tracing("gateway", env={}, exporter=spans)
    with tracing.span("chat", headers={"traceparent": CLIENT_TRACEPARENT}):
        pass
    (span,) = spans.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"


def test_off_by_default_yet_a_clients_trace_passes_through() -> None:
    tracing = setup_tracing("gateway", env={})
    assert not tracing.enabled
    with tracing.span("chat", RequestAttributes(model="m"), {"traceparent": CLIENT_TRACEPARENT}):
        lines = tracing.header_lines()
    assert lines == f"traceparent: {CLIENT_TRACEPARENT}\r\n".encode()
    with tracing.span("chat"):
        assert tracing.header_lines() == b""  # no trace to pass on, none invented


def test_otlp_endpoint_comes_from_the_argument_or_the_environment() -> None:
    assert otlp_endpoint(None, {}) is None
    assert otlp_endpoint(None, {"INFERPLANE_OTLP_ENDPOINT": "http://otel:4318"}) == (
        "http://otel:4318/v1/traces"
    )
    assert otlp_endpoint("http://c:4318/custom", {}) == "http://c:4318/custom"
    with pytest.raises(ValueError, match="must start with http"):
        otlp_endpoint("otel:4318", {})


def test_an_endpoint_turns_on_otlp_export() -> None:
    tracing = setup_tracing("gateway", "http://127.0.0.1:9/v1/traces", env={})
    try:
        assert tracing.enabled
    finally:
        tracing.shutdown()
