"""The Prometheus file_sd file follows the replicas the lifecycle publishes: a ready stub
replica appears with its pool, model and replica labels; once it has stopped and been reaped
it is gone; `clear` empties the file. Prometheus reading such a file is tested in e2e."""

import asyncio
import json
import sys
import time
from pathlib import Path

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.local import LocalActuator
from inferplane.control.file_sd import FileSD, targets
from inferplane.control.lifecycle import Lifecycle
from inferplane.control.metrics import ControlMetrics
from inferplane.control.settings import ControllerConfig
from inferplane.gateway.state import GatewayState

STUB = [sys.executable, str(Path(__file__).parent / "stub_replica.py")]
FLEET = FleetConfig.model_validate(
    {
        "models": {"chat": {"source": "demo:tiny"}},
        "pools": {"chat": {"model": "chat", "replicas": {"min": 0, "max": 1}}},
        "routes": [{"name": "default", "pool": "chat"}],
    }
)


async def test_the_file_lists_published_replicas_and_forgets_stopped_ones(tmp_path: Path) -> None:
    state = GatewayState(FLEET)
    actuator = LocalActuator(tmp_path / "logs", STUB, clock=time.time)
    metrics = ControlMetrics(state.metrics.registry)
    lifecycle = Lifecycle(
        FLEET, state, actuator, ControllerConfig(), time.time, metrics, lambda: None
    )
    path = tmp_path / "sd" / "targets.json"
    lifecycle.on_publish = FileSD(path, lifecycle.pools).write
    pool = lifecycle.pools["chat"]
    try:
        lifecycle.start(pool)
        handle = next(iter(pool.replicas.values())).handle
        deadline = time.monotonic() + 10
        while pool.replicas[handle.id].phase != "ready":
            assert time.monotonic() < deadline
            await lifecycle.probe(pool, time.time())
            await asyncio.sleep(0.05)
        address = handle.url.removeprefix("http://")
        labels = {"pool": "chat", "model": "chat", "replica": handle.id}
        assert json.loads(path.read_text()) == [{"targets": [address], "labels": labels}]

        await actuator.stop(handle.id)
        lifecycle.reap()
        assert json.loads(path.read_text()) == []
        assert targets(lifecycle.pools.values()) == []
    finally:
        await lifecycle.close()
    FileSD(path, {}).clear()
    assert path.read_text() == "[]" and not list(path.parent.glob(".*.tmp"))
