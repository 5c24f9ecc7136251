"""The Kubernetes actuator against a small Kubernetes API over real HTTP (kube_api.py: the
Deployment scale subresource, pods, patches, a ReplicaSet controller and a kubelet running the
stub replica on loopback pod IPs): scale up, drain then scale down with the deletion-cost mark,
a crashed pod restarted in place and bound again, and a controller at zero holding a request
until the pod it scaled up is ready, then serving it."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import BackoffConfig, ReplicaHandle, ReplicaSpec
from inferplane.control.actuators.kubernetes import KubernetesActuator
from inferplane.control.actuators.kubernetes_pods import (
    DELETION_COST,
    LOWEST_COST,
    pool_object,
    pool_selector,
)
from inferplane.control.actuators.local import free_port
from inferplane.control.controller import Controller, ControllerConfig
from inferplane.gateway.app import GatewayApp
from inferplane.gateway.state import GatewayState
from tests.control.actuators.kube_api import KubeApi

pytestmark = pytest.mark.timeout(60)
NAMESPACE = "serving"
SPEC = ReplicaSpec("chat", "chat", ("demo:tiny",))


def kube_config_dict(server: str) -> dict[str, Any]:
    """A kubeconfig as `kubectl config view` shows one: the server, a token, a namespace."""
    return {
            "clusters": [{"name": "test", "cluster": {"server": server}}],
            "users": [{"name": "controller", "user": {"token": "t"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "controller",
                                                      "namespace": NAMESPACE}}],
            "current-context": "test",
    }  # fmt: skip


def kube_config(server: str) -> KubeConfig:
    return KubeConfig.from_dict(kube_config_dict(server))


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[tuple[KubeApi, KubernetesActuator]]:
    api = KubeApi(NAMESPACE, free_port())
    api.add_deployment(pool_object("chat"), pool_selector("chat"))
    await api.start()
    client = AsyncClient(kube_config(api.url))
    actuator = KubernetesActuator(
        client, NAMESPACE, port=api.port, admin_key="k", grace_s=5.0, sync_s=0.05
    )
    try:
        yield api, actuator
    finally:
        await actuator.close()
        await api.stop()


async def until(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def ready(handle: ReplicaHandle) -> bool:
    if not handle.url:
        return False
    async with httpx.AsyncClient(timeout=1) as client:
        with contextlib.suppress(httpx.HTTPError):
            return (await client.get(f"{handle.url}/ready")).status_code == 200
    return False


async def until_ready(*handles: ReplicaHandle) -> None:
    deadline = time.monotonic() + 15.0
    while not all([await ready(h) for h in handles]):
        assert time.monotonic() < deadline, [h.url for h in handles]
        await asyncio.sleep(0.05)


def replicas(api: KubeApi) -> int:
    return api.deployments[pool_object("chat")].replicas


async def test_scale_up_binds_each_replica_to_its_own_pod() -> None:
    async with cluster() as (api, actuator):
        first, second = actuator.start(SPEC), actuator.start(SPEC)
        assert first.url == "" and actuator.desired("chat") == 2
        await until_ready(first, second)
        assert replicas(api) == 2
        assert first.url != second.url and first.url.startswith("http://127.0.0.")
        assert first.node == "node-a" and "logs" in first.log_path
        assert [h.id for h in actuator.list()] == [first.id, second.id]
        assert ("scale", f"{pool_object('chat')}=2") in api.requests


async def test_stop_drains_marks_the_pod_and_scales_down_by_one() -> None:
    async with cluster() as (api, actuator):
        keep, victim = actuator.start(SPEC), actuator.start(SPEC)
        await until_ready(keep, victim)
        pods = {p.ip: p.name for p in api.pods.values()}
        victim_pod = pods[victim.url.removeprefix("http://").split(":")[0]]
        await actuator.stop(victim.id)
        assert replicas(api) == 1
        assert victim_pod not in api.pods  # the marked pod went, not the other one
        marks = [r for r in api.requests if r[0] == "annotate"]
        assert marks == [("annotate", f'{victim_pod}:{{"{DELETION_COST}": "{LOWEST_COST}"}}')]
        order = [r[0] for r in api.requests]
        assert order.index("annotate") < len(order) - 1 - order[::-1].index("scale")
        (reaped,) = actuator.reap()
        assert reaped is victim and victim.expected_exit and victim.returncode == 0
        assert [h.id for h in actuator.list()] == [keep.id] and await ready(keep)


async def test_a_crashed_pod_is_reaped_and_bound_again_when_restarted() -> None:
    async with cluster() as (api, actuator):
        first = actuator.start(SPEC)
        await until_ready(first)
        (pod,) = api.pods.values()
        api.kill(pod.name)
        crashed: list[ReplicaHandle] = []

        def reaped() -> bool:
            crashed.extend(actuator.reap())
            return bool(crashed)

        await until(reaped)
        assert crashed == [first] and first.returncode == -9 and not first.expected_exit
        assert replicas(api) == 1 and actuator.desired("chat") == 1  # the pod stays
        scales = len([r for r in api.requests if r[0] == "scale"])
        again = actuator.start(SPEC)  # the controller's restart
        await until_ready(again)
        assert again.url == first.url and api.pods[pod.name].restarts == 1
        assert len([r for r in api.requests if r[0] == "scale"]) == scales  # no new pod


def zero_fleet() -> FleetConfig:
    scale = {"metric": "in_flight_per_replica", "target": 1, "up_window": 0.3,
             "down_window": 60, "up_period": 0.3, "down_period": 0.3}  # fmt: skip
    return FleetConfig.model_validate(
        {
            "models": {"chat": {"source": "demo:tiny"}},
            "pools": {"chat": {"model": "chat", "replicas": {"min": 0, "max": 1},
                               "autoscale": scale}},
            "routes": [{"name": "default", "pool": "chat"}],
        }
    )  # fmt: skip


@contextlib.asynccontextmanager
async def gateway(
    actuator: KubernetesActuator, hold_timeout_s: float
) -> AsyncIterator[httpx.AsyncClient]:
    """The controller and an in-process gateway over `actuator`, for a pool at zero."""
    fleet = zero_fleet()
    state = GatewayState(fleet)
    settings: Any = ControllerConfig(
        interval_s=0.05, hold_timeout_s=hold_timeout_s, admin_key="k",
        backoff=BackoffConfig(base_s=0.1, max_s=0.4),
    )  # fmt: skip
    controller = Controller(fleet, state, actuator, settings)
    await state.start()
    loop = asyncio.create_task(controller.run())
    transport = httpx.ASGITransport(app=GatewayApp(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw",
                                     timeout=30) as client:  # fmt: skip
            yield client
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await controller.close()
        await state.stop()


async def test_at_zero_a_request_is_held_until_the_scaled_up_pod_serves_it() -> None:
    async with cluster() as (api, actuator), gateway(actuator, 20.0) as client:
        await asyncio.sleep(0.3)
        assert replicas(api) == 0 and not api.pods
        response = await client.post("/v1/completions", json={"model": "chat", "prompt": "hi"})
        assert response.status_code == 200, response.text
        assert replicas(api) == 1
        (handle,) = actuator.list()
        assert handle.url.startswith("http://127.0.0.")


async def test_a_pool_that_cannot_scale_answers_503_with_retry_after_not_404() -> None:
    async with cluster() as (api, actuator):
        del api.deployments[pool_object("chat")]  # the Deployment is missing: scaling fails
        async with gateway(actuator, 1.0) as client:
            response = await client.post("/v1/completions", json={"model": "chat", "prompt": "x"})
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "no_healthy_replica"
            (handle,) = actuator.list()
            assert "scaling inferplane-chat failed" in handle.unplaced


async def test_the_factory_builds_it_from_the_pod_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferplane.control.actuators.factory import ActuatorSetup, build_actuator  # noqa: PLC0415

    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps(kube_config_dict("http://127.0.0.1:1")))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.setenv("INFERPLANE_KUBERNETES_NAMESPACE", "models")
    monkeypatch.setenv("INFERPLANE_KUBERNETES_KEDA", "true")
    setup = ActuatorSetup(zero_fleet(), tmp_path, grace_s=9.0, env={"INFERPLANE_ADMIN_KEY": "s"})
    actuator = build_actuator("kubernetes", setup)
    assert isinstance(actuator, KubernetesActuator)
    assert (actuator.namespace, actuator.admin_key, actuator.grace_s) == ("models", "s", 9.0)
    assert not actuator.writes_scale  # KEDA owns the counts
    await actuator.close()
