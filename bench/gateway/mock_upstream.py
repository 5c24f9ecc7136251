"""A fast mock OpenAI upstream for the gateway benchmark: raw asyncio HTTP/1.1 on uvloop.

It must never be the bottleneck, so every response is prebuilt bytes and the HTTP parsing is
httptools (llhttp, in C). Keep-alive, pipelining and chunked request bodies all work.

    POST /v1/chat/completions            a fixed small chat.completion JSON body
    POST /v1/chat/completions stream     20 SSE chunks spaced CHUNK_GAP_S, then data: [DONE]
    GET  /health, /v1/models, /metrics   so that routers which probe their workers are happy

Run: python bench/gateway/mock_upstream.py --port 9100 [--chunks 20 --gap-ms 9]
"""

import argparse
import asyncio
import json
import signal
import time
from typing import Any

import httptools
import uvloop

MODEL = "bench-model"
CREATED = 1767225600


def _http(status: str, ctype: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _chat_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there!"},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        },
        separators=(",", ":"),
    ).encode()


def _sse_frame(payload: dict[str, Any] | str) -> bytes:
    """One SSE event as one HTTP chunk of a chunked response."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    data = f"data: {text}\n\n".encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _stream_frames(chunks: int) -> list[bytes]:
    frames = []
    for i in range(chunks):
        last = i == chunks - 1
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" tok{i}"}
        frames.append(
            _sse_frame(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": MODEL,
                    "choices": [
                        {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                    ],
                }
            )
        )
    return frames


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
DONE = _sse_frame("[DONE]") + b"0\r\n\r\n"
MODELS = json.dumps(
    {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "bench"}],
    }
).encode()
METRICS = (
    b"# TYPE vllm:num_requests_running gauge\n"
    b'vllm:num_requests_running{model_name="bench-model"} 0\n'
    b"# TYPE vllm:num_requests_waiting gauge\n"
    b'vllm:num_requests_waiting{model_name="bench-model"} 0\n'
    b"# TYPE vllm:gpu_cache_usage_perc gauge\n"
    b'vllm:gpu_cache_usage_perc{model_name="bench-model"} 0\n'
    b"# TYPE vllm:kv_cache_usage_perc gauge\n"
    b'vllm:kv_cache_usage_perc{model_name="bench-model"} 0\n'
)


class Responses:
    """Every reply the mock sends, built once."""

    def __init__(self, chunks: int, gap_s: float) -> None:
        self.chat = _http("200 OK", "application/json", _chat_body())
        self.models = _http("200 OK", "application/json", MODELS)
        self.health = _http("200 OK", "application/json", b'{"status":"ok"}')
        self.metrics = _http("200 OK", "text/plain; version=0.0.4", METRICS)
        self.not_found = _http("404 Not Found", "application/json", b'{"error":"not found"}')
        self.frames = _stream_frames(chunks)
        self.gap_s = gap_s

    def for_get(self, path: bytes) -> bytes:
        path = path.split(b"?", 1)[0]
        if path in (b"/health", b"/ready", b"/healthz", b"/readiness", b"/liveness"):
            return self.health
        if path == b"/v1/models":
            return self.models
        if path == b"/metrics":
            return self.metrics
        return self.not_found


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection; httptools calls back as the request's parts arrive."""

    def __init__(self, replies: Responses) -> None:
        self.replies = replies
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.streams = 0  # streams in progress: a reply must not interleave with them
        self.pending: list[tuple[bytes, bytes, bytes, bool]] = []
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        request = (
            self.parser.get_method(),
            self.url,
            b"".join(self.body),
            self.parser.should_keep_alive(),
        )
        if self.streams:
            self.pending.append(request)
        else:
            self._answer(*request)

    def _answer(self, method: bytes, url: bytes, body: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        self.keep_alive = keep_alive
        if method != b"POST":
            self.transport.write(self.replies.for_get(url))
        elif b'"stream":true' in body.replace(b" ", b""):
            self._start_stream()
            return
        else:
            self.transport.write(self.replies.chat)
        if not keep_alive:
            self.transport.close()

    def _start_stream(self) -> None:
        assert self.transport is not None
        self.streams += 1
        self.transport.write(STREAM_HEAD + self.replies.frames[0])
        loop = asyncio.get_running_loop()
        loop.call_later(self.replies.gap_s, self._next_frame, 1, time.monotonic())

    def _next_frame(self, index: int, started: float) -> None:
        if self.transport is None:
            return
        frames = self.replies.frames
        if index >= len(frames):
            self.transport.write(DONE)
            self._end_stream()
            return
        self.transport.write(frames[index])
        # Aim each frame at its own slot so timer lateness does not pile up.
        delay = started + (index + 1) * self.replies.gap_s - time.monotonic()
        asyncio.get_running_loop().call_later(max(0.0, delay), self._next_frame, index + 1, started)

    def _end_stream(self) -> None:
        self.streams -= 1
        if not self.keep_alive and self.transport is not None:
            self.transport.close()
            return
        while self.pending and not self.streams:
            self._answer(*self.pending.pop(0))


async def serve(host: str, port: int, replies: Responses) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(replies), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=9.0)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, Responses(args.chunks, args.gap_ms / 1000)))


if __name__ == "__main__":
    main()
