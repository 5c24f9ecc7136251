"""A real `inferplane serve` process exports its spans over OTLP/HTTP to a receiver on
127.0.0.1: a request carrying a traceparent yields a server span in the caller's trace, with
the model, request id, token counts and TTFT; its JSON log line carries the same request id."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from inferplane.control.actuators.local import free_port
from inferplane.telemetry.tracing import (
    ATTR_COMPLETION_TOKENS,
    ATTR_MODEL,
    ATTR_PROMPT_TOKENS,
    ATTR_REQUEST_ID,
    ATTR_TTFT,
)
from tests.e2e.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Receiver(ThreadingHTTPServer):
    """The receiving end of OTLP/HTTP: keeps every span POSTed to /v1/traces."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.spans: list[Span] = []
        self.posts = 0


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            self.server.posts += 1
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _attributes(span: Span) -> dict[str, object]:
    values: dict[str, object] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values


def test_a_request_with_a_traceparent_is_exported_in_its_trace(
    tiny_model_dir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    args = [str(tiny_model_dir), "--served-model-name", "tiny", "--kv-cache-memory", "16MiB"]
    server = ServerProcess(args, tmp_path / "server.log", {"INFERPLANE_OTLP_ENDPOINT": endpoint})
    try:
        server.wait_ready()
        body = {"model": "tiny", "prompt": "hello", "max_tokens": 3, "ignore_eos": True}
        headers = {"traceparent": TRACEPARENT, "x-request-id": "trace-me-1"}
        response = httpx.post(f"{server.url}/v1/completions", json=body, headers=headers)
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "trace-me-1"
        server.terminate()  # shutdown flushes the batch of spans
        assert server.wait_exit(30) == 0
    finally:
        server.kill()
    assert receiver.posts >= 1
    (span,) = [s for s in receiver.spans if s.trace_id.hex() == TRACE_ID]
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"
    assert span.kind == Span.SPAN_KIND_SERVER
    attributes = _attributes(span)
    assert attributes[ATTR_MODEL] == "tiny"
    assert attributes[ATTR_REQUEST_ID] == "trace-me-1"
    assert attributes[ATTR_COMPLETION_TOKENS] == 3
    assert int(str(attributes[ATTR_PROMPT_TOKENS])) > 0
    assert float(str(attributes[ATTR_TTFT])) > 0
    log_lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    done = [entry for entry in log_lines if entry.get("message") == "request completed"]
    assert [entry["request_id"] for entry in done] == ["trace-me-1"]
    assert done[0]["model"] == "tiny" and done[0]["completion_tokens"] == 3
