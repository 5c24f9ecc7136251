"""Probes and discovery: /health (alive), /ready (loaded, awake, not draining), /metrics,
GET /v1/models."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from inferplane.server import common
from inferplane.server.protocol import model_card

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> Response:
    state = common.server_state(request)
    reason = _not_ready_reason(state.loaded, state.sleeping, state.drain.draining, state.load_error)
    if reason is None:
        return JSONResponse({"status": "ready", "models": state.model_names})
    return JSONResponse({"status": reason}, status_code=503, headers={"Retry-After": "1"})


def _not_ready_reason(
    loaded: bool, sleeping: bool, draining: bool, load_error: str | None
) -> str | None:
    if load_error is not None:
        return f"failed: {load_error}"
    if draining:
        return "draining"
    if not loaded:
        return "loading"
    return "sleeping" if sleeping else None


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body = common.server_state(request).metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    state = common.server_state(request)
    max_len = state.engine.max_model_len if state.engine is not None else None
    cards = []
    if state.settings.model_name is not None:
        cards.append(model_card(state.settings.model_name, state.created, max_len))
    if state.settings.embedding_model_name is not None:
        cards.append(model_card(state.settings.embedding_model_name, state.created, None))
    return {"object": "list", "data": cards}
