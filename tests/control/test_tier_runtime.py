"""Model tiers carried out by the controller over stub replica processes and a real in-process
gateway: idle demotion hot -> warm -> cold by the tiers' own clock, a request promoting from
either, the hot memory budget putting the other model to sleep, a prewarm window, a pool with
a minimum staying hot; each transition on the gateway's /metrics."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from inferplane.config.schema import FleetConfig
from inferplane.control.tier_runtime import memory_need
from tests.control.test_controller import FAST, Fleet, running

pytestmark = pytest.mark.timeout(45)
GIB = 1024**3


def fleet(pools: dict[str, dict[str, Any]], **tiers: Any) -> FleetConfig:
    scale = {"metric": "in_flight_per_replica", "target": 1, **FAST, "idle_to_zero": 60}
    return FleetConfig.model_validate(
        {
            "models": {name: {"source": "demo:tiny"} for name in pools},
            "pools": {
                name: {"model": name, "autoscale": scale, "replicas": {"min": 0, "max": 1}, **p}
                for name, p in pools.items()
            },
            "routes": [{"name": name, "pool": name, "match": {"model": name}} for name in pools],
            "tiers": tiers,
        }
    )


def load_count(metrics: str, model: str, source: str, target: str) -> float:
    prefix = f'inference_model_load_seconds_count{{from="{source}",model="{model}",to="{target}"}}'
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


async def metrics(f: Fleet) -> str:
    return (await f.client.get("/metrics")).text


def tier(f: Fleet, pool: str = "chat") -> str:
    return f.controller.tiers.tier(f.controller.pools[pool])


async def test_idle_demotes_hot_to_warm_to_cold_and_requests_promote(tmp_path: Path) -> None:
    config = fleet({"chat": {}}, idle_to_warm=0.4, idle_to_cold=1.2)
    async with running(tmp_path, config) as f:
        assert tier(f) == "cold" and f.phases() == []
        assert (await f.complete()).status_code == 200  # cold -> hot while it waits
        await f.until(lambda: f.phases() == ["sleeping"])  # idle -> warm: /admin/sleep
        pid = next(iter(f.pool.replicas.values())).handle.pid
        assert (await f.complete()).status_code == 200  # warm -> hot: /admin/wake
        assert next(iter(f.pool.replicas.values())).handle.pid == pid
        await f.until(lambda: f.phases() == [], timeout_s=10)  # warm -> cold: stopped
        await f.until(lambda: f.controller.tiers.manager.pending_target("chat") is None)
        assert tier(f) == "cold"
        text = await metrics(f)
        for source, target in [("cold", "hot"), ("hot", "warm"), ("warm", "hot"), ("warm", "cold")]:
            assert load_count(text, "chat", source, target) >= 1, (source, target)


async def test_keep_warm_never_goes_cold(tmp_path: Path) -> None:
    config = fleet({"chat": {"tier": {"keep_warm": True}}}, idle_to_warm=0.3, idle_to_cold=0.3)
    async with running(tmp_path, config) as f:
        assert (await f.complete()).status_code == 200
        await f.until(lambda: f.phases() == ["sleeping"])
        await asyncio.sleep(0.8)
        assert f.phases() == ["sleeping"] and tier(f) == "warm"


async def test_the_hot_budget_puts_the_lowest_scoring_model_to_sleep(tmp_path: Path) -> None:
    hot, _ = memory_need(fleet({"chat": {}}), "chat")  # the planner's formula for demo:tiny
    config = fleet({"chat": {}, "b": {}}, hot_gib=1.5 * hot / GIB)  # room for one hot model
    async with running(tmp_path, config) as f:
        b = f.controller.pools["b"]
        assert (await f.complete()).status_code == 200
        body = {"model": "b", "prompt": "hi"}
        assert (await f.client.post("/v1/completions", json=body)).status_code == 200
        await f.until(lambda: f.phases() == ["sleeping"])
        assert (tier(f, "chat"), tier(f, "b")) == ("warm", "hot")
        assert [m.phase for m in b.replicas.values()] == ["ready"]
        assert load_count(await metrics(f), "chat", "hot", "warm") == 1


async def test_a_prewarm_window_promotes_without_a_request(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(minutes=1)).strftime("%H:%M"),
              "end": (now + timedelta(minutes=3)).strftime("%H:%M")}  # fmt: skip
    config = fleet({"chat": {"tier": {"prewarm": [window]}}})
    async with running(tmp_path, config) as f:
        await f.until(lambda: f.phases() == ["ready"])
        assert tier(f) == "hot"
        assert load_count(await metrics(f), "chat", "cold", "hot") == 1


async def test_a_pool_with_a_minimum_stays_hot(tmp_path: Path) -> None:
    config = fleet({"chat": {"replicas": {"min": 1, "max": 1}}}, idle_to_warm=0.2)
    async with running(tmp_path, config) as f:
        await f.until(lambda: f.phases() == ["ready"])
        started = time.monotonic()
        while time.monotonic() - started < 0.6:
            assert f.phases() == ["ready"]
            await asyncio.sleep(0.05)
        assert tier(f) == "hot"
        assert load_count(await metrics(f), "chat", "cold", "hot") == 1
