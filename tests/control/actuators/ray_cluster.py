"""A Ray cluster on this machine for the Ray backend's tests: a head without GPUs and worker
nodes that declare one fake H100 each (Ray hands out GPU ids; nothing uses CUDA). Kept lean for
small machines: no dashboard, a small object store, few CPUs, and node failures detected in
about a second instead of Ray's default fifteen."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray.cluster_utils import Cluster

STORE = 80 * 1024**2
FAST_FAILURE = {"health_check_period_ms": 300, "health_check_failure_threshold": 3}
GPU_NODE: dict[str, Any] = {
    "num_cpus": 2,
    "num_gpus": 1,
    "resources": {"accelerator_type:H100": 1},
    "object_store_memory": STORE,
}


def add_gpu_node(cluster: Cluster) -> Any:
    node = cluster.add_node(**GPU_NODE)
    cluster.wait_for_nodes()
    return node


def remove_node_of(cluster: Cluster, node_id: str) -> None:
    """Kill the node with this id at once (its raylet and every process on it)."""
    nodes = cluster.list_all_nodes()  # type: ignore[no-untyped-call]
    cluster.remove_node(next(n for n in nodes if n.node_id == node_id), allow_graceful=False)


@contextmanager
def ray_cluster(gpu_nodes: int = 2, connect: bool = True) -> Iterator[Cluster]:
    """The cluster, with this process connected as a driver (to read Ray's state)."""
    head = {"num_cpus": 1, "num_gpus": 0, "include_dashboard": False,
            "object_store_memory": STORE, "_system_config": FAST_FAILURE}  # fmt: skip
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(gpu_nodes):
            cluster.add_node(**GPU_NODE)
        cluster.wait_for_nodes()
        if connect:
            ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]


def leftovers() -> dict[str, list[str]]:
    """What inferplane left on the cluster: live actors and placement groups not removed."""
    from ray._private import state  # noqa: PLC0415 (Ray's own view, no dashboard needed)
    from ray.util.placement_group import placement_group_table  # noqa: PLC0415

    groups = [g["name"] for g in placement_group_table().values() if g["state"] != "REMOVED"]
    actors = [a["ActorID"] for a in state.actors().values() if a["State"] != "DEAD"]
    return {"groups": groups, "actors": actors}
