"""Server-sent events framing, as OpenAI streams: `data: {json}\\n\\n`, then `data: [DONE]`.

Events are bytes (orjson, UTF-8): this runs per token per stream, and Starlette would
otherwise encode each str again before it goes out."""

from collections.abc import AsyncGenerator
from typing import Any

import anyio
import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Send

from inferplane.errors import error_body
from inferplane.server.errors import APIError

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(StreamingResponse):
    """An SSE response that closes its events however the response ends: when the client
    hangs up or is cut off for not reading (inferplane.http.backpressure), Starlette cancels
    the writer while the events wait at a `yield`, and their engine requests would be aborted
    only once the garbage collector finalised the generator. Closing it here aborts them at
    once."""

    def __init__(self, events: AsyncGenerator[bytes, None], headers: dict[str, str]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._events = events

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):  # the writer may be cancelled: close anyway
                await self._events.aclose()


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ChunkTemplate:
    """Stream chunks of one response share everything but their choice: the shared part is
    encoded once, so each token costs one small encoding of its choice."""

    def __init__(self, head: dict[str, Any], include_usage: bool) -> None:
        encoded = orjson.dumps(head)
        self._prefix = b"data: " + encoded[:-1] + b',"choices":['
        self._suffix = b"]" + (b',"usage":null' if include_usage else b"") + b"}\n\n"

    def render(self, choice: dict[str, Any]) -> bytes:
        return self._prefix + orjson.dumps(choice) + self._suffix


STREAM_STATUS = "stream_status"  # scope state: the status a stream failed with after its 200


def error_event(error: Exception, request: Request) -> bytes:
    """A failure after the headers went out can only be told inside the stream; the request's
    log line and metrics count it with the error's status, not the 200 already sent."""
    if isinstance(error, APIError):
        status = error.status
        body = error_body(status, error.message, error.param, error.code)
    else:
        status = 500
        body = error_body(status, "generation failed: the engine raised an error", code="internal")
    request.scope.setdefault("state", {})[STREAM_STATUS] = status
    return sse_event(body) + DONE
