"""deploy/prometheus/up.yml read by a real Prometheus: the file_sd file the controller keeps
brings a running (stub) replica in as a scraped target with its pool, model and replica labels,
and takes it out once the replica has stopped."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.local import LocalActuator, free_port
from inferplane.control.file_sd import FileSD
from inferplane.control.lifecycle import Lifecycle
from inferplane.control.metrics import ControlMetrics
from inferplane.control.settings import ControllerConfig
from inferplane.gateway.state import GatewayState
from tests.e2e.prometheus_process import prometheus_binary

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        prometheus_binary() is None,
        reason="prometheus is not installed: scripts/ci/prometheus.sh installs it",
    ),
]
UP_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "up.yml"
STUB = [sys.executable, str(Path(__file__).parents[1] / "control" / "stub_replica.py")]
FLEET = FleetConfig.model_validate(
    {
        "models": {"chat": {"source": "demo:tiny"}},
        "pools": {"chat": {"model": "chat", "replicas": {"min": 0, "max": 1}}},
        "routes": [{"name": "default", "pool": "chat"}],
    }
)


def config_reading(targets: Path) -> dict[str, Any]:
    """The shipped config, its file_sd pointed at `targets`, scraping every second."""
    config: dict[str, Any] = yaml.safe_load(UP_CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if "file_sd_configs" in job]
    job["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "1s"}]
    config["global"]["scrape_interval"] = config["global"]["scrape_timeout"] = "1s"
    config.pop("rule_files")
    return config


def replica_targets(url: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    return [t for t in body if t["labels"].get("job") == "replicas"]


async def until(check: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_prometheus_follows_the_replicas_through_file_sd(tmp_path: Path) -> None:
    targets = tmp_path / "prometheus-targets.json"
    state = GatewayState(FLEET)
    actuator = LocalActuator(tmp_path / "logs", STUB, clock=time.time)
    metrics = ControlMetrics(state.metrics.registry)
    lifecycle = Lifecycle(
        FLEET, state, actuator, ControllerConfig(), time.time, metrics, lambda: None
    )
    lifecycle.on_publish = FileSD(targets, lifecycle.pools).write
    lifecycle.on_publish(lifecycle.pools["chat"])  # the file exists, empty, from the start
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config_reading(targets)))
    port = free_port()
    prometheus = subprocess.Popen(
        [prometheus_binary() or "prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url, pool = f"http://127.0.0.1:{port}", lifecycle.pools["chat"]
    try:
        lifecycle.start(pool)
        handle = next(iter(pool.replicas.values())).handle
        deadline = time.monotonic() + 10
        while pool.replicas[handle.id].phase != "ready":  # published: the file lists it
            assert time.monotonic() < deadline
            await lifecycle.probe(pool, time.time())
            await asyncio.sleep(0.05)
        scraped = await until(
            lambda: [t for t in replica_targets(url) if t["health"] == "up"], timeout_s=45
        )
        assert [t["labels"]["replica"] for t in scraped] == [handle.id]
        assert scraped[0]["labels"]["pool"] == "chat" and scraped[0]["labels"]["model"] == "chat"
        assert scraped[0]["scrapeUrl"] == f"{handle.url}/metrics"

        await actuator.stop(handle.id)
        lifecycle.reap()
        await until(lambda: replica_targets(url) == [], timeout_s=30)
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        await lifecycle.close()
