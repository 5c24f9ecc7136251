"""Pieces every generation route shares: timing, headers, usage, prefetch and collection."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from inferplane.engine.core.confidence import Confidence
from inferplane.engine.core.outputs import RequestOutput
from inferplane.server.errors import APIError
from inferplane.server.generation import Choice
from inferplane.server.state import ServerState
from inferplane.server.telemetry import Outcome, record_outcome, request_id

Item = tuple[int, RequestOutput]
DISCONNECT_POLL_S = 0.5


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.inferplane
    return state


@dataclass
class Timer:
    """Server-side timings of one request, on the state's clock."""

    clock: Callable[[], float]
    start: float
    first_token: float | None = None
    end: float | None = None

    @classmethod
    def started(cls, clock: Callable[[], float]) -> "Timer":
        return cls(clock, clock())

    def saw(self, out: RequestOutput) -> None:
        if self.first_token is None and out.new_tokens:
            self.first_token = self.clock()

    def finish(self) -> None:
        self.end = self.clock()

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.start

    @property
    def total_s(self) -> float:
        return (self.end if self.end is not None else self.clock()) - self.start


def response_headers(request: Request, generated_id: str, timer: Timer) -> dict[str, str]:
    """x-request-id (the client's, else `generated_id`), the model version and timings."""
    state = server_state(request)
    rid = request_id(request, generated_id)
    headers = {"x-request-id": rid, "x-model-version": state.settings.model_version}
    timings = []
    if timer.ttft_s is not None:
        headers["x-time-to-first-token-ms"] = f"{timer.ttft_s * 1000:.1f}"
        timings.append(f"ttft;dur={timer.ttft_s * 1000:.1f}")
    if timer.end is not None:
        headers["x-inference-time-ms"] = f"{timer.total_s * 1000:.1f}"
        timings.append(f"total;dur={timer.total_s * 1000:.1f}")
    if timings:
        headers["server-timing"] = ", ".join(timings)
    return headers


def usage(choices: Sequence[Choice], prompt_tokens: int) -> dict[str, Any]:
    completion = sum(choice.completion_tokens for choice in choices)
    cached = max((choice.cached_tokens for choice in choices), default=0)
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    confidence = _confidence([c.confidence for c in choices if c.confidence is not None])
    if confidence is not None:  # the gateway reads it into the ledger and its metrics
        body["confidence"] = confidence.as_json()
    return body


def _confidence(parts: Sequence[Confidence]) -> Confidence | None:
    """The choices' confidence together, token-weighted."""
    tokens = sum(part.tokens for part in parts)
    if not tokens:
        return None
    mean = sum(part.mean_logprob * part.tokens for part in parts) / tokens
    low = sum(part.low_confidence_share * part.tokens for part in parts) / tokens
    return Confidence(mean, low, tokens)


class Prefetched:
    """A stream whose first item was awaited before the response started (so queue-full and
    context errors become HTTP statuses before any header is sent). A plain iterator, not a
    generator layer: each token of each stream passes through here."""

    def __init__(self, stream: AsyncGenerator[Item, None]) -> None:
        self._stream = stream
        self._first: Item | None = None

    async def start(self, timer: Timer) -> "Prefetched":
        try:
            self._first = await anext(self._stream)
        except StopAsyncIteration:
            return self
        timer.saw(self._first[1])
        return self

    def __aiter__(self) -> "Prefetched":
        return self

    async def __anext__(self) -> Item:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return await self._stream.__anext__()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def collect(request: Request, items: Prefetched, choices: list[Choice], timer: Timer) -> None:
    """Fill `choices`; stop (aborting the engine requests) if the client goes away."""

    async def consume() -> None:
        async with contextlib.aclosing(items):
            async for index, out in items:
                timer.saw(out)
                choices[index].add(out)

    task = asyncio.create_task(consume())
    while not task.done():
        await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
        if not task.done() and await request.is_disconnected():
            task.cancel()
    if task.cancelled():
        raise APIError(499, "the client closed the request", code="client_closed_request")
    await task
    timer.finish()


def observe(
    request: Request, model: str, timer: Timer, choices: Sequence[Choice], prompt_tokens: int
) -> None:
    """Latency histograms, and the outcome the request's span and log line report."""
    tokens = sum(choice.completion_tokens for choice in choices)
    server_state(request).metrics.observe_generation(model, timer.ttft_s, timer.total_s, tokens)
    record_outcome(request, Outcome(prompt_tokens, tokens, timer.ttft_s))
