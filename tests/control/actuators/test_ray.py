"""The Ray actuator on a live Ray cluster of this machine (a head and two nodes with one fake
H100 each), running the stub replica as the served process: one replica per node, a third
that does not fit and says why, a drained stop, a node that dies under its replica, and
nothing left on the cluster after close, nor after its driver is killed."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from subprocess import PIPE

import httpx
import pytest
from ray.cluster_utils import Cluster

from inferplane.config.schema import Resources
from inferplane.control.actuators.base import ReplicaHandle, ReplicaSpec
from inferplane.control.actuators.ray import LOST, RayActuator
from inferplane.control.actuators.ray_bundle import bundle_for
from inferplane.control.actuators.ray_replica import HostConfig
from tests.control.actuators.ray_cluster import (
    add_gpu_node,
    leftovers,
    ray_cluster,
    remove_node_of,
)

STUB = (sys.executable, str(Path(__file__).parents[1] / "stub_replica.py"))
SPEC = ReplicaSpec("chat", "chat", ("demo:tiny",))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with ray_cluster(gpu_nodes=2) as running:
        yield running


def actuator(tmp_path: Path) -> RayActuator:
    host = HostConfig(str(tmp_path), command=STUB, grace_s=5.0)
    return RayActuator({"chat": bundle_for(Resources(gpu="H100"))}, host)


async def until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(f"{url}/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_ready(handles: Sequence[ReplicaHandle], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    for handle in handles:
        while not (handle.url and await ready(handle.url)):
            assert time.monotonic() < deadline, f"{handle.id} not ready"
            await asyncio.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_one_replica_per_node_a_third_says_why_and_close_leaves_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    ray_actuator = actuator(tmp_path)
    first, second, third = (ray_actuator.start(SPEC) for _ in range(3))
    try:

        def settled() -> bool:
            ray_actuator.reap()
            placed = [h for h in (first, second, third) if h.url]
            return len(placed) == 2 and any(h.unplaced for h in (first, second, third))

        await until(settled)
        placed = [h for h in (first, second, third) if h.url]
        waiting = next(h for h in (first, second, third) if not h.url)
        assert placed[0].node != placed[1].node  # one per node
        assert waiting.unplaced == ("no node with 1 x H100, 1 CPU free (0 GPU free across 3 nodes)")
        await wait_ready(placed)
        assert all(Path(h.log_path).exists() and alive(h.pid) for h in placed)
        assert {h.id for h in ray_actuator.list()} == {first.id, second.id, third.id}
    finally:
        await ray_actuator.close()
    assert leftovers() == {"groups": [], "actors": []}
    assert not [h.pid for h in placed if alive(h.pid)]
    assert {h.id for h in ray_actuator.reap()} == {first.id, second.id, third.id}


async def test_stop_drains_and_a_dead_node_takes_its_replica(
    cluster: Cluster, tmp_path: Path
) -> None:
    ray_actuator = actuator(tmp_path)
    try:
        first, second = ray_actuator.start(SPEC), ray_actuator.start(SPEC)
        await until(lambda: not ray_actuator.reap() and bool(first.url and second.url))
        await wait_ready([first, second])

        await ray_actuator.stop(first.id, drain=True)  # SIGTERM: the stub drains, exits 0
        stopped = ray_actuator.reap()
        assert [(h.id, h.returncode, h.expected_exit) for h in stopped] == [(first.id, 0, True)]

        remove_node_of(cluster, second.node)
        lost: list[ReplicaHandle] = []

        def reaped() -> bool:
            lost.extend(ray_actuator.reap())
            return bool(lost)

        await until(reaped, 20)
        assert [(h.id, h.returncode, h.expected_exit) for h in lost] == [(second.id, LOST, False)]
        await until(lambda: not alive(second.pid), 10)  # the server died with its actor

        add_gpu_node(cluster)  # room again: a restart lands on the new node
        third = ray_actuator.start(SPEC)
        await until(lambda: not ray_actuator.reap() and bool(third.url), 30)
        assert third.node != second.node
    finally:
        await ray_actuator.close()
    assert leftovers() == {"groups": [], "actors": []}
    assert os.path.exists(first.log_path)


def test_a_killed_driver_leaves_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """`inferplane up` SIGKILLed: its actors die with it (they are the driver's), Ray removes
    its placement groups, and the servers get SIGTERM from the kernel."""
    child = (
        "import sys, time\n"
        "from inferplane.config.schema import Resources\n"
        "from inferplane.control.actuators.base import ReplicaSpec\n"
        "from inferplane.control.actuators.ray import RayActuator, connect\n"
        "from inferplane.control.actuators.ray_bundle import bundle_for\n"
        "from inferplane.control.actuators.ray_replica import HostConfig\n"
        "connect(sys.argv[1])\n"
        f"host = HostConfig({str(tmp_path)!r}, command={STUB!r})\n"
        "actuator = RayActuator({'chat': bundle_for(Resources(gpu='H100'))}, host)\n"
        "handle = actuator.start(ReplicaSpec('chat', 'chat', ()))\n"
        "while not handle.url:\n"
        "    actuator.reap()\n"
        "    time.sleep(0.1)\n"
        "print(handle.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", child, cluster.address], stdout=PIPE)
    assert driver.stdout is not None
    server = int(driver.stdout.readline())
    assert alive(server) and leftovers()["actors"]
    driver.kill()
    driver.wait(10)
    deadline = time.monotonic() + 20
    while leftovers() != {"groups": [], "actors": []} or alive(server):
        assert time.monotonic() < deadline, leftovers()
        time.sleep(0.2)
