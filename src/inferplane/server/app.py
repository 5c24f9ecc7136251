"""The FastAPI application of one model server: `create_app(state)` wires routes, error
handlers and middleware around a `ServerState`. Nothing here does I/O until it is served."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inferplane import __version__
from inferplane.server import (
    routes_admin,
    routes_chat,
    routes_completions,
    routes_embeddings,
    routes_probes,
)
from inferplane.server.drain import GUARDED_PREFIXES, InFlightMiddleware
from inferplane.server.errors import install_error_handlers
from inferplane.server.limits import BodySizeLimitMiddleware
from inferplane.server.metrics import ServerMetrics
from inferplane.server.state import ServerState

log = logging.getLogger(__name__)
Loader = Callable[[ServerState], Awaitable[None]]


def create_app(state: ServerState, loader: Loader | None = None) -> FastAPI:
    """The app; `loader`, when given, fills the state's models after startup so that
    /health answers while weights load."""
    app = FastAPI(
        title="inferplane model server", version=__version__, lifespan=_lifespan(state, loader)
    )
    app.state.inferplane = state
    for module in (routes_chat, routes_completions, routes_embeddings, routes_probes, routes_admin):
        app.include_router(module.router)
    install_error_handlers(app)
    # Added last runs first: requests are counted whatever refuses them (413, 503, ...).
    app.add_middleware(InFlightMiddleware, drain=state.drain)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=state.settings.max_body_bytes)
    app.add_middleware(RequestCountMiddleware, metrics=state.metrics)
    return app


def _lifespan(
    state: ServerState, loader: Loader | None
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load(state, loader)) if loader is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            if state.engine is not None:
                await state.engine.shutdown()

    return lifespan


async def _load(state: ServerState, loader: Loader | None) -> None:
    if loader is None:
        return
    try:
        await loader(state)
    except Exception as error:  # /ready reports it; the process stays up to say why
        log.exception("loading the model failed")
        state.load_error = str(error)


class RequestCountMiddleware:
    """inference_request_total{model,status} for every API request, errors included."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            label = scope.get("state", {}).get("model_label", "unknown")
            self.metrics.count_request(str(label)[:64], status)
