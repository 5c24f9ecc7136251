"""The controller over real child processes (the stub replica) and a real in-process gateway:
start to min, restart a killed replica, scale up under load, drain on the way down, idle to
zero and back on the next request, the warm tier (sleep / wake), and a CPU pool that stops
growing where the host's cores run out."""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import BackoffConfig
from inferplane.control.actuators.local import LocalActuator
from inferplane.control.controller import Controller, ControllerConfig
from inferplane.control.core_book import CoreBook
from inferplane.control.cores import CorePlan
from inferplane.control.fleet_status import FleetStatus
from inferplane.control.inventory import declared_cpus
from inferplane.gateway.app import GatewayApp
from inferplane.gateway.state import GatewayState

STUB = [sys.executable, str(Path(__file__).parent / "stub_replica.py")]
pytestmark = pytest.mark.timeout(45)
FAST = {"up_window": 0.3, "down_window": 0.6, "up_period": 0.3, "down_period": 0.3}


def fleet(replicas: dict[str, int], **autoscale: Any) -> FleetConfig:
    tier = {"keep_warm": autoscale.pop("keep_warm", False)}
    scale = {"metric": "in_flight_per_replica", "target": 1, **FAST, **autoscale}
    return FleetConfig.model_validate(
        {
            "models": {"chat": {"source": "demo:tiny"}},
            "pools": {
                "chat": {"model": "chat", "replicas": replicas, "autoscale": scale, "tier": tier}
            },
            "routes": [{"name": "default", "pool": "chat"}],
        }
    )


class Fleet:
    def __init__(self, controller: Controller, client: httpx.AsyncClient) -> None:
        self.controller = controller
        self.client = client
        self.pool = controller.pools["chat"]

    def phases(self) -> list[str]:
        return sorted(m.phase for m in self.pool.replicas.values())

    async def until(self, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"phases {self.phases()}, held {self.pool.held}")
            await asyncio.sleep(0.02)

    def complete(self, delay: float = 0.0) -> Awaitable[httpx.Response]:
        body = {"model": "chat", "prompt": "hi", "delay": delay}
        return self.client.post("/v1/completions", json=body)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    config: FleetConfig,
    cores: CoreBook | None = None,
    command: list[str] = STUB,
    **options: Any,
) -> AsyncIterator[Fleet]:
    state = GatewayState(config)
    actuator = LocalActuator(tmp_path, command, clock=time.time)
    backoff = BackoffConfig(base_s=0.1, max_s=0.4)
    settings = ControllerConfig(
        interval_s=0.05, hold_timeout_s=10.0, admin_key="k", backoff=backoff, **options
    )
    controller = Controller(config, state, actuator, settings, cores=cores)
    await state.start()
    loop = asyncio.create_task(controller.run())
    transport = httpx.ASGITransport(app=GatewayApp(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=20) as c:
            yield Fleet(controller, c)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await controller.close()
        actuator.kill_all()
        await state.stop()


async def test_streams_ttft_from_the_gateway_feeds_the_pools_signal_window(
    tmp_path: Path,
) -> None:
    """`autoscale.metric: ttft_p95` needs samples: the gateway's proxy hands each stream's
    TTFT to the controller, which files it under the pool."""
    async with running(tmp_path, fleet({"min": 0, "max": 1})) as f:
        assert f.pool.window.ttft_p95(time.time()) is None
        on_ttft = f.controller.gateway.proxy.on_ttft
        assert on_ttft is not None
        on_ttft("chat", 0.25)
        on_ttft("elsewhere", 9.0)  # a pool the controller does not run: ignored
        assert f.pool.window.ttft_p95(time.time()) == 0.25


async def test_starts_the_minimum_and_restarts_a_killed_replica(tmp_path: Path) -> None:
    async with running(tmp_path, fleet({"min": 2, "max": 2})) as f:
        await f.until(lambda: f.phases() == ["ready", "ready"])
        assert f.controller.gateway.registry.ready_count("chat") == 2
        victim = next(iter(f.pool.replicas.values())).handle
        os.kill(victim.pid, signal.SIGKILL)
        await f.until(lambda: f.pool.restarts == 1)
        await f.until(lambda: f.phases() == ["ready", "ready"])
        assert victim.id not in f.pool.replicas
        assert (await f.complete()).status_code == 200


async def test_a_burst_scales_up_and_the_scale_down_drains(tmp_path: Path) -> None:
    async with running(tmp_path, fleet({"min": 1, "max": 3})) as f:
        await f.until(lambda: f.phases() == ["ready"])
        burst = [asyncio.ensure_future(f.complete(delay=1.5)) for _ in range(3)]
        started = time.monotonic()
        await f.until(lambda: f.phases().count("ready") >= 2)
        assert time.monotonic() - started < 1.5  # within the up window plus a start
        assert all(r.status_code == 200 for r in await asyncio.gather(*burst))
        await f.until(lambda: f.phases() == ["ready"], timeout_s=10)  # drained back to min
        metrics = (await f.client.get("/metrics")).text
        assert 'inference_autoscaler_decisions_total{direction="up",pool="chat"' in metrics
        assert 'inference_pool_desired_replicas{pool="chat"} 1.0' in metrics


async def test_drain_on_scale_down_loses_no_request(tmp_path: Path) -> None:
    async with running(tmp_path, fleet({"min": 1, "max": 2}, down_window=0.1)) as f:
        f.pool.autoscaler.bounds = f.pool.autoscaler.bounds.model_copy(update={"min": 2})
        await f.until(lambda: f.phases() == ["ready", "ready"])
        slow = [asyncio.ensure_future(f.complete(delay=1.0)) for _ in range(4)]
        await asyncio.sleep(0.2)
        f.pool.autoscaler.bounds = f.pool.autoscaler.bounds.model_copy(update={"min": 1})
        await f.until(lambda: "draining" in f.phases() or len(f.phases()) == 1)
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200] * 4
        await f.until(lambda: f.phases() == ["ready"])


async def test_idle_to_zero_then_the_next_request_wakes_a_replica(tmp_path: Path) -> None:
    async with running(tmp_path, fleet({"min": 0, "max": 2}, idle_to_zero=0.5)) as f:
        assert f.phases() == []
        response = await f.complete()  # held at zero while a replica starts
        assert response.status_code == 200
        # idle again -> zero; the demotion is timed once its drain has returned, which can be
        # a moment after the replica is gone (a request in that moment supersedes it)
        tiers = f.controller.tiers.manager
        await f.until(lambda: f.phases() == [] and tiers.pending_target("chat") is None, 10)
        assert f.pool.tier == "cold"
        assert (await f.complete()).status_code == 200
        status = FleetStatus(f.controller).snapshot()
        assert status["pools"][0]["tier"] == "hot"
        assert status["pools"][0]["replicas"][0]["pid"] > 0
        metrics = (await f.client.get("/metrics")).text  # the tiers timed both ways
        assert 'inference_model_load_seconds_count{from="hot",model="chat",to="cold"} 1.0' in (
            metrics
        )
        assert 'inference_model_load_seconds_count{from="cold",model="chat",to="hot"} 2.0' in (
            metrics
        )


async def test_keep_warm_sleeps_at_zero_and_a_request_wakes_it(tmp_path: Path) -> None:
    config = fleet({"min": 0, "max": 1}, idle_to_zero=0.3, keep_warm=True)
    async with running(tmp_path, config) as f:
        assert (await f.complete()).status_code == 200
        await f.until(lambda: f.phases() == ["sleeping"])
        assert f.pool.tier == "warm"
        pid = next(iter(f.pool.replicas.values())).handle.pid
        assert (await f.complete()).status_code == 200  # promoted warm -> hot while it waits
        assert next(iter(f.pool.replicas.values())).handle.pid == pid  # same process
        metrics = (await f.client.get("/metrics")).text
        assert 'inference_model_load_seconds_count{from="warm",model="chat",to="hot"} 1.0' in (
            metrics
        )


async def test_a_request_during_a_slow_sleep_call_wakes_the_replica_after_it(
    tmp_path: Path,
) -> None:
    """The replica is "sleeping" as soon as the controller decides it; a request then wakes it
    while the sleep call may still be on its way: the wake must land after it, or the replica
    stays asleep and the held request times out."""
    config = fleet({"min": 0, "max": 1}, idle_to_zero=0.3, keep_warm=True)
    async with running(tmp_path, config, command=[*STUB, "--sleep-delay", "0.6"]) as f:
        assert (await f.complete()).status_code == 200
        await f.until(lambda: f.phases() == ["sleeping"])
        began = time.monotonic()
        assert (await f.complete(delay=0.5)).status_code == 200  # the sleep call lands meanwhile
        assert time.monotonic() - began < 5  # woken, not held until the hold timed out
        assert (await f.complete()).status_code == 200  # awake still: the wake came last


async def test_a_full_hold_queue_answers_503(tmp_path: Path) -> None:
    async with running(tmp_path, fleet({"min": 0, "max": 1}), max_held=0) as f:
        response = await f.complete()
        assert response.status_code == 503


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
async def test_a_cpu_pool_grows_only_onto_free_cores_and_says_so(tmp_path: Path) -> None:
    host = declared_cpus(max(os.sched_getaffinity(0)) + 1)
    usable = tuple(sorted(os.sched_getaffinity(0)))[:2]  # two cores of this machine
    book = CoreBook(CorePlan(host, tuple(c for c in host.cpus if c not in usable), {"chat": 1}))
    async with running(tmp_path, fleet({"min": 1, "max": 4}), cores=book) as f:
        await f.until(lambda: f.phases() == ["ready"])
        burst = [asyncio.ensure_future(f.complete(delay=1.5)) for _ in range(6)]
        # 6 in flight asks for 6 replicas; two cores hold two: the reason says so
        capped = "cap 2 (0 of 2 cores free, 1 per replica) -> 2"
        await f.until(lambda: (d := f.pool.last_decision) is not None and capped in d.reason)
        assert len(f.pool.replicas) == 2
        assert all(r.status_code == 200 for r in await asyncio.gather(*burst))
