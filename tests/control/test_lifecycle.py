"""The replica lifecycle on its own (no control loop) over stub replica processes and a real
in-process gateway: start, probe, publish and release held requests; reap a crash and restart
it after its backoff; a replica not ready in time counts as a crash; a drain waits for the
gateway's requests on the replica; sleep and wake; close stops every child; CPU replicas
pinned to the cores a core book grants, given back by a sleeper and taken again on waking."""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import BackoffConfig
from inferplane.control.actuators.local import LocalActuator
from inferplane.control.core_book import CoreBook
from inferplane.control.cores import CorePlan
from inferplane.control.inventory import CpuHost
from inferplane.control.lifecycle import Lifecycle
from inferplane.control.metrics import ControlMetrics
from inferplane.control.replicas import Managed, PoolRuntime
from inferplane.control.resize import ScaleDown
from inferplane.control.settings import ControllerConfig
from inferplane.gateway.app import GatewayApp
from inferplane.gateway.state import GatewayState

STUB = [sys.executable, str(Path(__file__).parent / "stub_replica.py")]
pytestmark = pytest.mark.timeout(45)
FLEET = FleetConfig.model_validate(
    {
        "models": {"chat": {"source": "demo:tiny"}},
        "pools": {"chat": {"model": "chat", "replicas": {"min": 0, "max": 2}}},
        "routes": [{"name": "default", "pool": "chat"}],
    }
)


@dataclass
class Running:
    lifecycle: Lifecycle
    actuator: LocalActuator
    client: httpx.AsyncClient
    wakes: list[float]

    @property
    def pool(self) -> PoolRuntime:
        return self.lifecycle.pools["chat"]

    async def until(
        self, check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            outcome = check()
            if await outcome if isinstance(outcome, Awaitable) else outcome:
                return
            assert time.monotonic() < deadline, [m.phase for m in self.pool.replicas.values()]
            await asyncio.sleep(0.02)

    async def ready_one(self) -> Managed:
        """Start a replica and probe until it is ready."""
        self.lifecycle.start(self.pool)
        managed = list(self.pool.replicas.values())[-1]

        async def probed() -> bool:
            await self.lifecycle.probe(self.pool, time.time())
            return managed.phase == "ready"

        await self.until(probed)
        return managed


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, command: list[str] = STUB, cores: CoreBook | None = None, **options: Any
) -> AsyncIterator[Running]:
    state = GatewayState(FLEET)
    actuator = LocalActuator(tmp_path, command, clock=time.time)
    config = ControllerConfig(
        admin_key="k", backoff=BackoffConfig(base_s=0.2, max_s=0.4), **options
    )
    wakes: list[float] = []
    metrics = ControlMetrics(state.metrics.registry)
    lifecycle = Lifecycle(
        FLEET, state, actuator, config, time.time, metrics, lambda: wakes.append(time.time()),
        cores=cores,
    )  # fmt: skip
    await state.start()
    transport = httpx.ASGITransport(app=GatewayApp(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=20) as c:
            yield Running(lifecycle, actuator, c, wakes)
    finally:
        await lifecycle.close()
        actuator.kill_all()
        await state.stop()


async def ready_status(managed: Managed) -> int:
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(f"{managed.handle.url}/ready")).status_code


async def test_a_ready_replica_is_published_timed_and_releases_held_requests(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as r:
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        assert r.pool.holds.hold(waiter, time.time())
        r.lifecycle.start_replica(r.pool, "cold")
        assert r.wakes  # the loop is asked to probe it at once
        managed = next(iter(r.pool.replicas.values()))
        assert managed.phase == "starting" and not waiter.done()

        async def probed() -> bool:
            await r.lifecycle.probe(r.pool, time.time())
            return managed.phase == "ready"

        await r.until(probed)
        assert await waiter is True and r.pool.held == 0
        assert r.lifecycle.gateway.registry.ready_count("chat") == 1
        assert managed.record is r.lifecycle.gateway.registry.replicas("chat")[0]
        assert (await r.client.post("/v1/completions", json={"model": "chat"})).status_code == 200
        metrics = (await r.client.get("/metrics")).text
        assert (
            'inference_model_load_seconds_count{from="cold",model="chat",to="hot"} 1.0' in metrics
        )


async def test_a_crash_is_reaped_and_restarted_after_its_backoff(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        managed = await r.ready_one()
        os.kill(managed.handle.pid, signal.SIGKILL)

        def reaped() -> bool:
            r.lifecycle.reap()
            return r.pool.restarts == 1

        await r.until(reaped)
        assert r.pool.replicas == {} and r.lifecycle.gateway.registry.ready_count("chat") == 0
        [due] = r.pool.restarts_due
        assert r.pool.active == 1  # a restart that is due counts toward the pool's size
        r.lifecycle.restart_due(r.pool, due - 0.1)
        assert r.pool.replicas == {}
        r.lifecycle.restart_due(r.pool, due)
        assert [m.phase for m in r.pool.replicas.values()] == ["starting"]
        assert r.pool.restarts_due == []


async def test_a_replica_not_ready_in_time_is_stopped_and_restarted(tmp_path: Path) -> None:
    slow = [*STUB, "--start-delay", "30"]
    async with running(tmp_path, slow, ready_timeout_s=0.5) as r:
        r.lifecycle.start(r.pool)
        managed = next(iter(r.pool.replicas.values()))
        await r.lifecycle.probe(r.pool, managed.since + 0.1)
        assert managed.phase == "starting"  # not ready, not late yet
        await r.lifecycle.probe(r.pool, managed.since + 1.0)

        def reaped() -> bool:
            r.lifecycle.reap()
            return r.pool.restarts == 1

        await r.until(reaped)  # killed, and counted as a crash
        assert len(r.pool.restarts_due) == 1


async def test_a_drain_waits_for_the_gateways_requests_on_the_replica(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        managed = await r.ready_one()
        slow = asyncio.ensure_future(
            r.client.post("/v1/completions", json={"model": "chat", "delay": 1.0})
        )
        await r.until(lambda: managed.record is not None and managed.record.in_flight == 1)
        r.lifecycle.shrink(r.pool, ScaleDown(drain=(managed.handle.id,)))
        assert managed.phase == "draining"
        assert r.lifecycle.gateway.registry.ready_count("chat") == 0  # out of the balancer
        await asyncio.sleep(0.3)
        assert await ready_status(managed) == 200  # not stopped while the request runs
        assert (await slow).status_code == 200

        def reaped() -> bool:
            r.lifecycle.reap()
            return not r.pool.replicas

        await r.until(reaped)  # then stopped: an expected exit, not a crash
        assert r.pool.restarts == 0 and r.pool.restarts_due == []


async def test_shrink_cancels_restarts_and_a_sleeping_replica_wakes(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        managed = await r.ready_one()
        r.pool.restarts_due = [time.time() + 60]
        r.lifecycle.shrink(r.pool, ScaleDown(cancel_restarts=1, sleep=managed.handle.id))
        assert r.pool.restarts_due == [] and managed.phase == "sleeping"
        await r.until(lambda: _is(ready_status(managed), 503))  # the engine was put to sleep
        assert r.pool.tier == "warm"
        pid = managed.handle.pid
        r.lifecycle.wake_replica(managed)
        assert (managed.phase, managed.promoted_from) == ("starting", "warm")

        async def probed() -> bool:
            await r.lifecycle.probe(r.pool, time.time())
            return managed.phase == "ready"

        await r.until(probed)
        assert managed.handle.pid == pid  # the same process
        metrics = (await r.client.get("/metrics")).text
        assert (
            'inference_model_load_seconds_count{from="warm",model="chat",to="hot"} 1.0' in metrics
        )


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


async def test_close_stops_every_replica(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        first, second = await r.ready_one(), await r.ready_one()
        await r.lifecycle.close()
        assert r.actuator.list() == []
        for managed in (first, second):
            with pytest.raises(ProcessLookupError):
                os.kill(managed.handle.pid, 0)


ALLOWED = sorted(os.sched_getaffinity(0))


def allowed_cpus(managed: Managed) -> str:
    with open(f"/proc/{managed.handle.pid}/status") as status:
        line = next(line for line in status if line.startswith("Cpus_allowed_list:"))
    return line.split(":", 1)[1].strip()


@pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two cores to pin apart")
async def test_cpu_replicas_run_on_their_own_cores_and_a_sleeper_gives_its_back(
    tmp_path: Path,
) -> None:
    a, b = ALLOWED[:2]
    book = CoreBook(CorePlan(CpuHost(((a, b),)), (), {"chat": 1}))
    async with running(tmp_path, cores=book) as r:
        first, second = await r.ready_one(), await r.ready_one()
        assert (allowed_cpus(first), allowed_cpus(second)) == (str(a), str(b))
        assert first.handle.spec.threads == 1
        cap = r.lifecycle.core_cap(r.pool)
        assert cap is not None and (cap.replicas, cap.reason[:10]) == (2, "0 of 2 cor")
        r.lifecycle.shrink(r.pool, ScaleDown(sleep=second.handle.id))
        await r.until(lambda: book.holding(second.handle.id) is None)  # asleep: core b free
        third = await r.ready_one()
        assert allowed_cpus(third) == str(b) and not third.cores.shared  # type: ignore[union-attr]
        await r.lifecycle.drain(first)  # stopped: core a free again
        r.lifecycle.reap()
        r.lifecycle.wake_replica(second)  # its core b went to the third: it moves to a
        assert allowed_cpus(second) == str(a) and book.holding(second.handle.id) is not None
