"""Tracing with OpenTelemetry: off by default, OTLP over HTTP when an endpoint is configured.

The gateway opens a span per request (and one per attempt on a replica), injects the W3C
`traceparent` header into the upstream request, and the replica continues the trace from
that header, so one trace shows a request from the front door to the engine. Spans carry the
model, pool, replica, token counts and TTFT. Nothing here touches OpenTelemetry's global
provider: each process holds its own `Tracing` and passes it where spans are made.

When tracing is off the tracer is a no-op, and a span opened from incoming headers still
carries their trace context, so a client's traceparent passes through to the replica.
"""

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

ENDPOINT_ENV = "INFERPLANE_OTLP_ENDPOINT"
TRACES_PATH = "/v1/traces"
ATTR_MODEL = "gen_ai.request.model"
ATTR_POOL = "inferplane.pool"
ATTR_REPLICA = "inferplane.replica"
ATTR_ROUTE = "inferplane.route"
ATTR_REQUEST_ID = "inferplane.request_id"
ATTR_PROMPT_TOKENS = "gen_ai.usage.input_tokens"
ATTR_COMPLETION_TOKENS = "gen_ai.usage.output_tokens"
ATTR_TTFT = "inferplane.ttft_s"
ATTR_STATUS = "http.response.status_code"


@dataclass(frozen=True)
class RequestAttributes:
    """What a span says about one request; None fields are left off the span."""

    model: str | None = None
    pool: str | None = None
    replica: str | None = None
    route: str | None = None
    request_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    status: int | None = None

    def as_dict(self) -> dict[str, AttributeValue]:
        pairs: list[tuple[str, AttributeValue | None]] = [
            (ATTR_MODEL, self.model),
            (ATTR_POOL, self.pool),
            (ATTR_REPLICA, self.replica),
            (ATTR_ROUTE, self.route),
            (ATTR_REQUEST_ID, self.request_id),
            (ATTR_PROMPT_TOKENS, self.prompt_tokens),
            (ATTR_COMPLETION_TOKENS, self.completion_tokens),
            (ATTR_TTFT, self.ttft_s),
            (ATTR_STATUS, self.status),
        ]
        return {key: value for key, value in pairs if value is not None}


class Tracing:
    """One process's tracer, and the W3C trace context in and out of header dicts."""

    def __init__(self, tracer: Tracer, provider: TracerProvider | None = None) -> None:
        self.tracer = tracer
        self.provider = provider
        self._propagator = TraceContextTextMapPropagator()

    @property
    def enabled(self) -> bool:
        """False when spans go nowhere: hot paths can skip building attributes."""
        return self.provider is not None

    def extract(self, headers: Mapping[str, str]) -> Context:
        """The trace context a request arrived with (header names in lower case)."""
        return self._propagator.extract(headers)

    def inject(self, headers: MutableMapping[str, str], span: Span | None = None) -> None:
        """Write `traceparent` (and `tracestate`) for `span`, or the current span, into headers."""
        context = None if span is None else set_span_in_context(span)
        self._propagator.inject(headers, context=context)

    def header_lines(self, span: Span | None = None) -> bytes:
        """The same headers as raw HTTP/1.1 lines, for a proxy that writes its own head."""
        headers: dict[str, str] = {}
        self.inject(headers, span)
        return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: RequestAttributes | None = None,
        headers: Mapping[str, str] | None = None,
        kind: SpanKind = SpanKind.SERVER,
    ) -> Iterator[Span]:
        """A span, the child of the trace in `headers` when given, else of the current span."""
        context = None if headers is None else self.extract(headers)
        with self.tracer.start_as_current_span(name, context=context, kind=kind) as span:
            if attributes is not None and span.is_recording():
                span.set_attributes(attributes.as_dict())
            yield span

    def shutdown(self) -> None:
        """Flush spans still queued for export."""
        if self.provider is not None:
            self.provider.shutdown()


def record(span: Span, attributes: RequestAttributes) -> None:
    """Add what became known during the request (replica, tokens, TTFT, status)."""
    if span.is_recording():
        span.set_attributes(attributes.as_dict())


def otlp_endpoint(endpoint: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The traces URL: the explicit endpoint, else INFERPLANE_OTLP_ENDPOINT; None: off."""
    url = (endpoint or env.get(ENDPOINT_ENV, "")).strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"OTLP endpoint {url!r} must start with http:// or https://")
    path = url.partition("://")[2].partition("/")[2]
    return url if path else url.rstrip("/") + TRACES_PATH


def setup_tracing(
    service_name: str,
    endpoint: str | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """Tracing for one process: OTLP/HTTP export when an endpoint is set, `exporter` when
    given (exported at once: tests), otherwise off (a no-op tracer)."""
    url = otlp_endpoint(endpoint, env)
    if exporter is None and url is None:
        return Tracing(NoOpTracer())
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return Tracing(provider.get_tracer("inferplane"), provider)
