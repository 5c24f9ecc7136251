"""The rollout admin endpoint on the gateway port of `inferplane up`.

    GET  /admin/rollouts               every rollout the controller knows, as JSON
    POST /admin/rollouts               start one: {"pool", "to", "steps", "hold_s", "min_requests"}
    POST /admin/rollouts/POOL/abort    roll it back now

Callers need an admin key (in dev mode, with no keys file, everyone is the admin). Errors use
the OpenAI error body: 400 for a bad plan, 403 for a key that is not an admin, 404 for no such
rollout, 409 for a rollout already running.
"""

from typing import Any

import orjson

from inferplane.control.rollout import Gates, RolloutPlan
from inferplane.control.rollout_runtime import RolloutRunner, describe
from inferplane.gateway.access import Access
from inferplane.gateway.errors import GatewayError
from inferplane.gateway.transport.asgi import (
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    respond_error,
)

ROLLOUTS_PATH = "/admin/rollouts"
MAX_BODY = 64 * 1024


class RolloutApi:
    def __init__(self, runner: RolloutRunner, access: Access) -> None:
        self.runner = runner
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._authorize(scope)
            status, body = await self._dispatch(scope, receive)
        except GatewayError as error:
            await respond_error(send, error)
            return
        await respond(send, status, orjson.dumps(body))

    def _authorize(self, scope: Scope) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.access.authenticate(headers).admin:
            raise GatewayError(403, "rollouts need an admin key", code="forbidden")

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        path, method = scope["path"].rstrip("/"), scope["method"]
        if path == ROLLOUTS_PATH and method == "GET":
            return 200, {"rollouts": [describe(s) for s in self.runner.states()]}
        if path == ROLLOUTS_PATH and method == "POST":
            plan = _plan(await read_body(receive, MAX_BODY))
            return 201, describe(self._start(plan))
        pool, _, action = path.removeprefix(ROLLOUTS_PATH + "/").rpartition("/")
        if method == "POST" and action == "abort" and pool:
            try:
                return 200, describe(self.runner.abort(pool))
            except KeyError as error:
                raise GatewayError(404, str(error.args[0]), code="not_found") from error
        raise GatewayError(404, f"{method} {path} is not served here", code="not_found")

    def _start(self, plan: RolloutPlan) -> Any:
        try:
            return self.runner.start(plan)
        except ValueError as error:
            status = 409 if "already running" in str(error) else 400
            raise GatewayError(status, str(error), code="invalid_rollout") from error


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _plan(body: bytes) -> RolloutPlan:
    try:
        data = orjson.loads(body)
        gates = Gates(
            min_requests=int(data.get("min_requests", Gates().min_requests)),
            logprob_drop=_optional(data.get("logprob_drop")),
            feedback_margin=_optional(data.get("feedback_margin")),
            drift_margin=_optional(data.get("drift_margin")),
        )
        steps = tuple(float(step) for step in data.get("steps", (5, 25, 50, 100)))
        hold_s = float(data.get("hold_s", 120))
        return RolloutPlan(str(data["pool"]), str(data["to"]), steps, hold_s, gates)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        advice = 'send {"pool": "chat", "to": "chat-v2", "steps": [5, 25, 50, 100], "hold_s": 120}'
        raise GatewayError(
            400, f"bad rollout: {error}; {advice}", code="invalid_rollout"
        ) from error
