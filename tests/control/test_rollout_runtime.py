"""Rollouts driven by the real controller over stub replica processes and an in-process gateway:
a healthy canary advances through its steps to 100%; a canary that answers 500 is rolled back
on its own (share 0, canary stopped); state is on disk and a new controller resumes it."""

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import BackoffConfig
from inferplane.control.actuators.local import LocalActuator
from inferplane.control.controller import Controller, ControllerConfig
from inferplane.control.rollout import Gates, Rollout, RolloutPlan
from inferplane.control.rollout_api import RolloutApi
from inferplane.control.rollout_runtime import rollout_pool, with_rollout_pools
from inferplane.control.rollout_store import RolloutStore
from inferplane.gateway.app import GatewayApp
from inferplane.gateway.state import GatewayState

STUB = [sys.executable, str(Path(__file__).parent / "stub_replica.py")]
pytestmark = pytest.mark.timeout(45)
FLEET = {
    "models": {
        "chat": {"source": "demo:tiny"},
        "chat-v2": {"source": "demo:tiny", "version": "2"},
        "chat-broken": {"source": "demo:tiny", "version": "fail-500"},
    },
    "pools": {"chat": {"model": "chat", "replicas": {"min": 1, "max": 1}}},
    "routes": [{"name": "default", "pool": "chat"}],
}


def plan(to: str, hold_s: float = 0.3) -> RolloutPlan:
    return RolloutPlan("chat", to, (50.0, 100.0), hold_s, Gates(min_requests=4))


@contextlib.asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[Controller, httpx.AsyncClient]]:
    config = with_rollout_pools(FleetConfig.model_validate(FLEET))
    state = GatewayState(config)
    actuator = LocalActuator(tmp_path / "logs", STUB, clock=time.time)
    settings = ControllerConfig(
        interval_s=0.05, hold_timeout_s=10.0, admin_key="k", rollout_dir=str(tmp_path / "state"),
        backoff=BackoffConfig(base_s=0.1, max_s=0.4),
    )  # fmt: skip
    controller = Controller(config, state, actuator, settings)
    await state.start()
    loop = asyncio.create_task(controller.run())
    transport = httpx.ASGITransport(app=GatewayApp(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=20) as c:
            yield controller, c
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await controller.close()
        actuator.kill_all()
        await state.stop()


async def traffic_until(
    client: httpx.AsyncClient, done: Callable[[], bool], timeout_s: float = 20.0
) -> list[httpx.Response]:
    """Requests from ever new users (so the sticky share spreads) until `done`."""
    deadline = time.monotonic() + timeout_s
    answers: list[httpx.Response] = []
    while not done():
        assert time.monotonic() < deadline, "the rollout did not finish in time"
        body = {"model": "chat", "prompt": "hi", "user": f"user-{len(answers)}"}
        answers.append(await client.post("/v1/completions", json=body))
    return answers


def status(controller: Controller) -> str:
    return controller.rollouts.states()[0].status


async def test_a_healthy_canary_advances_to_100_percent(tmp_path: Path) -> None:
    async with running(tmp_path) as (controller, client):
        controller.rollouts.start(plan("chat-v2"))
        stored = RolloutStore(tmp_path / "state").load("chat")
        assert stored is not None and stored.status == "running"
        answers = await traffic_until(client, lambda: status(controller) == "complete")
        assert all(a.status_code == 200 for a in answers)
        routes = {a.headers["x-inferplane-route"] for a in answers}
        assert routes == {"default:chat", "rollout:chat.rollout"}
        last = await client.post("/v1/completions", json={"model": "chat", "user": "new"})
        assert last.headers["x-inferplane-route"] == "rollout:chat.rollout"  # 100%
        stored = RolloutStore(tmp_path / "state").load("chat")
        assert stored is not None and stored.status == "complete"


async def test_an_erroring_canary_is_rolled_back_automatically(tmp_path: Path) -> None:
    async with running(tmp_path) as (controller, client):
        controller.rollouts.start(plan("chat-broken", hold_s=30.0))
        started = time.monotonic()
        answers = await traffic_until(client, lambda: status(controller) == "rolled_back")
        assert time.monotonic() - started < 15.0  # judged on min_requests, not the 30 s hold
        assert {a.status_code for a in answers} >= {200, 500}
        assert "error rate" in controller.rollouts.states()[0].reason
        canary = controller.pools[rollout_pool("chat")]
        deadline = time.monotonic() + 10
        while canary.replicas:  # drained and stopped
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        after = [await client.post("/v1/completions", json={"model": "chat", "user": f"u{i}"})
                 for i in range(8)]  # fmt: skip
        assert {a.headers["x-inferplane-route"] for a in after} == {"default:chat"}


async def test_a_restarted_controller_resumes_and_the_api_aborts(tmp_path: Path) -> None:
    RolloutStore(tmp_path / "state").save(Rollout.start(plan("chat-v2", hold_s=60.0)).state)
    async with running(tmp_path) as (controller, _client):
        await asyncio.sleep(0.1)
        assert controller.pools[rollout_pool("chat")].pinned == 1
        api = httpx.ASGITransport(app=RolloutApi(controller.rollouts, controller.gateway.access))
        async with httpx.AsyncClient(transport=api, base_url="http://gw") as admin:
            listed = (await admin.get("/admin/rollouts")).json()["rollouts"]
            assert [(r["pool"], r["status"]) for r in listed] == [("chat", "running")]
            again = await admin.post("/admin/rollouts", json={"pool": "chat", "to": "chat-v2"})
            assert again.status_code == 409
            bad = await admin.post("/admin/rollouts", json={"pool": "chat", "to": "nope"})
            assert bad.status_code == 400 and "not in the fleet" in bad.text
            aborted = await admin.post("/admin/rollouts/chat/abort")
            assert aborted.json()["status"] == "rolled_back"
        assert controller.pools[rollout_pool("chat")].pinned == 0
