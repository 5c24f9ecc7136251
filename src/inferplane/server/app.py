"""The FastAPI application of one model server: `create_app(state)` wires routes, error
handlers and middleware around a `ServerState`. Nothing here does I/O until it is served."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI

from inferplane import __version__
from inferplane.server import (
    routes_admin,
    routes_chat,
    routes_completions,
    routes_embeddings,
    routes_probes,
)
from inferplane.server.drain import InFlightMiddleware
from inferplane.server.errors import install_error_handlers
from inferplane.server.limits import BodySizeLimitMiddleware
from inferplane.server.state import ServerState
from inferplane.server.telemetry import RequestTelemetryMiddleware

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
    # Added last runs first: requests are counted, traced and logged whatever refuses them
    # (413, 503, ...).
    app.add_middleware(InFlightMiddleware, drain=state.drain)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=state.settings.max_body_bytes)
    app.add_middleware(
        RequestTelemetryMiddleware, metrics=state.metrics, tracing=state.tracing, clock=state.clock
    )
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
