"""Draining: the state machine that lets a replica stop without losing a request.

serving -> draining (on SIGTERM or /admin/drain): /ready answers 503, new API requests get 503,
requests already in flight run to completion; once none is left (or the deadline passes) the
process may exit. `InFlightMiddleware` counts requests for the whole life of their response,
streams included, and refuses new ones while draining.
"""

import asyncio
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from inferplane.server.errors import APIError, error_response

Clock = Callable[[], float]

# Paths that do work for a client; probes, metrics and admin stay open while draining.
GUARDED_PREFIXES = ("/v1/chat", "/v1/completions", "/v1/embeddings", "/v1/predict")


class DrainState:
    """Counts in-flight requests and knows whether the server is draining."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._in_flight = 0
        self._draining_since: float | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def draining(self) -> bool:
        return self._draining_since is not None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start_draining(self) -> None:
        if self._draining_since is None:
            self._draining_since = self._clock()

    def enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight; False when the deadline passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True


class InFlightMiddleware:
    """Counts guarded requests until their response is fully sent; 503 while draining."""

    def __init__(self, app: ASGIApp, drain: DrainState) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            refusal = APIError(
                503,
                "the server is draining; retry on another replica",
                code="draining",
                headers={"Retry-After": "1"},
            )
            await error_response(refusal)(scope, receive, send)
            return
        self.drain.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.leave()
