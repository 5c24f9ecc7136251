"""The admin API, behind the admin key: sleep (warm tier), wake, drain, status.

The key comes as `Authorization: Bearer KEY` or `X-Admin-Key: KEY`. No key sent is 401, a
wrong key 403; a server started without an admin key refuses every admin call with 403.
"""

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from inferplane.engine.core.protocol import EngineClient
from inferplane.server import common
from inferplane.server.errors import APIError
from inferplane.server.protocol import DrainRequest
from inferplane.server.state import ServerState


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-admin-key")


def require_admin(request: Request) -> ServerState:
    state = common.server_state(request)
    expected = state.settings.admin_key
    if not expected:
        raise APIError(
            403,
            "the admin API is disabled: start the server with --admin-key or INFERPLANE_ADMIN_KEY",
            code="admin_disabled",
        )
    presented = _presented_key(request)
    if presented is None:
        raise APIError(
            401,
            "the admin API needs a key: send Authorization: Bearer KEY",
            code="missing_admin_key",
        )
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise APIError(403, "the admin key is not valid", code="invalid_admin_key")
    return state


AdminState = Annotated[ServerState, Depends(require_admin)]
router = APIRouter(prefix="/admin")


def _engine(state: ServerState) -> EngineClient:
    if state.engine is None:
        raise APIError(503, "the model is still loading", code="model_loading")
    return state.engine


@router.post("/sleep")
async def sleep(state: AdminState) -> dict[str, Any]:
    await _engine(state).sleep()
    return status_body(state)


@router.post("/wake")
async def wake(state: AdminState) -> dict[str, Any]:
    await _engine(state).wake()
    return status_body(state)


@router.post("/drain")
async def drain(state: AdminState, body: DrainRequest | None = None) -> dict[str, Any]:
    state.drain.start_draining()
    if body is not None and body.timeout_s is not None:
        await state.drain.wait_idle(body.timeout_s)
    return status_body(state)


@router.get("/status")
async def status(state: AdminState) -> dict[str, Any]:
    return status_body(state)


def status_body(state: ServerState) -> dict[str, Any]:
    return {
        "model": state.settings.model_name,
        "model_version": state.settings.model_version,
        "loaded": state.loaded,
        "sleeping": state.sleeping,
        "draining": state.drain.draining,
        "in_flight": state.drain.in_flight,
    }
