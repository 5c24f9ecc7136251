"""What the gateway reads of a response on its way to the client, without copying or re-encoding
it: the status, the replica's model version, our own headers added to the head, and enough of
the body to know the token usage (the whole body of a non-stream; the last chunks of a stream,
where `stream_options.include_usage` puts the usage, and a count of its events otherwise).
"""

from dataclasses import dataclass
from typing import Any

import orjson

from inferplane.gateway.transport.asgi import Message, Send

MODEL_VERSION_HEADER = b"x-model-version"
REQUEST_ID_HEADER = b"x-request-id"
TAIL_BYTES = 4096  # the usage chunk and [DONE] are small; the tail keeps the last few chunks


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    estimated: bool = False
    mean_logprob: float | None = None  # the completion's confidence, when the replica says
    low_confidence_share: float | None = None

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ResponseTap:
    """Wraps the ASGI `send` of one request; hand `tap.send` to whoever answers the client."""

    __slots__ = (
        "_send",
        "body",
        "events",
        "extra",
        "model_version",
        "request_id",
        "status",
        "tail",
    )

    def __init__(self, send: Send, request_id: bytes) -> None:
        self._send = send
        self.request_id = request_id  # added unless the replica already echoed it
        self.extra: list[tuple[bytes, bytes]] = []  # more header pairs (a budget warning)
        self.status = 0
        self.model_version = ""
        self.body = b""  # the first body message: the whole body of a non-stream answer
        self.tail = b""
        self.events = 0  # SSE events seen (b"data:" lines), for estimating a stream's tokens

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message["headers"]
            self.status = message["status"]
            request_id = [(REQUEST_ID_HEADER, self.request_id)]
            for name, value in headers:
                if name == MODEL_VERSION_HEADER:
                    self.model_version = value.decode("latin-1")
                elif name == REQUEST_ID_HEADER:
                    request_id = []
            message["headers"] = [*headers, *request_id, *self.extra]
        else:
            chunk = message.get("body", b"")
            if chunk:
                self.events += chunk.count(b"data:")
                if self.body:
                    self.tail = (self.tail + chunk)[-TAIL_BYTES:]
                else:
                    self.body = chunk
        await self._send(message)


def usage_of(tap: ResponseTap, stream: bool, est_prompt_tokens: int) -> Usage | None:
    """The usage the replica reported; for a stream without it, an estimate (marked so)."""
    if not stream:
        return _usage(_json(tap.body))
    for line in reversed((tap.body[-TAIL_BYTES:] + tap.tail).split(b"\n")):
        if line.startswith(b"data: {") and b'"usage"' in line:
            found = _usage(_json(line[6:]))
            if found is not None:
                return found
    if tap.status != 200:
        return None
    # One event per token is how OpenAI-style servers stream; [DONE] is not a token.
    return Usage(est_prompt_tokens, max(tap.events - 1, 0), 0, estimated=True)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _usage(data: Any) -> Usage | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    confidence = usage.get("confidence")
    mean = low = None
    if isinstance(confidence, dict):
        mean = _float(confidence.get("mean_logprob"))
        low = _float(confidence.get("low_confidence_share"))
    return Usage(
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        _int(cached),
        mean_logprob=mean,
        low_confidence_share=low,
    )


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
