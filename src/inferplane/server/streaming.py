"""Server-sent events framing, as OpenAI streams: `data: {json}\\n\\n`, then `data: [DONE]`."""

import json
from typing import Any

from inferplane.errors import error_body
from inferplane.server.errors import APIError

DONE = "data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


class ChunkTemplate:
    """Stream chunks of one response share everything but their choice: the shared part is
    encoded once, so each token costs one small json.dumps (this runs per token per stream)."""

    def __init__(self, head: dict[str, Any], include_usage: bool) -> None:
        encoded = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
        self._prefix = f'data: {encoded[:-1]},"choices":['
        self._suffix = "]" + (',"usage":null' if include_usage else "") + "}\n\n"

    def render(self, choice: dict[str, Any]) -> str:
        return (
            self._prefix
            + json.dumps(choice, separators=(",", ":"), ensure_ascii=False)
            + self._suffix
        )


def error_event(error: Exception) -> str:
    """A failure after the headers went out can only be told inside the stream."""
    if isinstance(error, APIError):
        body = error_body(error.status, error.message, error.param, error.code)
    else:
        body = error_body(500, "generation failed: the engine raised an error", code="internal")
    return sse_event(body) + DONE
