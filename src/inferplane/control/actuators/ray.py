"""Replicas on a Ray cluster: one placement group per replica, holding one actor that runs
`inferplane serve` on its node.

The controller stays the brain (plain Ray: no Ray Serve, no Ray autoscaling of replicas). Each
replica is a placement group of one bundle (the pool's CPUs, GPUs, GPU type and memory, packed
STRICT on one node) and one `ReplicaHost` actor inside it, which starts the server as its child
and answers with the node and the URL. `start` returns at once with an empty URL; the next
`reap` (each tick of the controller) fills the URL in once the actor answers, or, while the
bundle waits for a node, sets `unplaced` to the reason (for example: no node with 1 x H100
free), logged once each time it changes. A replica whose process exits, or whose actor dies
with its node, is reaped like a crashed local process; its group is removed, so it leaves no
reservation behind. `stop` drains through the actor (SIGTERM to the server), then kills the
actor and removes the group; `close` does that for all and leaves the cluster as it found it
(a Ray this actuator started is shut down).
"""

import asyncio
import builtins
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray._private import state as ray_state
from ray.exceptions import RayError
from ray.util.placement_group import (
    PlacementGroup,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import ReplicaHandle, ReplicaSpec
from inferplane.control.actuators.ray_bundle import Bundle, bundle_for, unplaced_reason
from inferplane.control.actuators.ray_replica import HostConfig, Placed, ReplicaHost

log = logging.getLogger(__name__)
Clock = Callable[[], float]
LOST = -1  # the exit code given to a replica lost with its node (it had none)
PLACE_GRACE_S = 1.0  # a bundle waiting longer than this is explained
STOP_SLACK_S = 10.0  # beyond the drain grace, for the actor's own answer
LOCAL_OBJECT_STORE = 128 * 1024**2  # a local Ray holds no data for us: a small store
NAMESPACE = "inferplane"


@dataclass
class _Replica:
    handle: ReplicaHandle
    bundle: Bundle
    group: PlacementGroup
    actor: Any  # a Ray actor handle (untyped)
    placing: Any  # the start call's ObjectRef until it answers, then None
    exit: Any = None  # the wait call's ObjectRef once placed
    released: bool = False


def connect(address: str | None) -> bool:
    """Join the Ray cluster at `address` (`auto`, `HOST:PORT`, `ray://HOST:PORT`), or start a
    local Ray without one. True when this call connected (then `close` disconnects)."""
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {
        "namespace": NAMESPACE,
        "log_to_driver": False,  # each replica logs to its own file on its node
        "logging_level": logging.WARNING,
    }
    if address is None:
        ray.init(
            address="local",
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE,
            **common,
        )
    else:
        ray.init(address=address, **common)
    return True


def bundles_of(fleet: FleetConfig) -> dict[str, Bundle]:
    """Each managed pool's bundle; ValueError (naming the pool) for what Ray cannot reserve."""
    bundles = {}
    for name, pool in fleet.pools.items():
        if pool.is_external:
            continue
        try:
            bundles[name] = bundle_for(pool.resources, fleet.ray.gpu_type_as)
        except ValueError as error:
            raise ValueError(f"pools.{name}.resources: {error}") from error
    return bundles


class RayActuator:
    """Starts, stops and watches replicas as placement groups + actors on a Ray cluster."""

    def __init__(
        self,
        bundles: Mapping[str, Bundle],
        host: HostConfig,
        *,
        clock: Clock = time.time,
        owns_connection: bool = False,
    ) -> None:
        self.bundles = dict(bundles)
        self.host = host
        self.clock = clock
        self.owns_connection = owns_connection
        self.run_id = secrets.token_hex(3)  # group names stay unique across runs
        self._host_class = ray.remote(ReplicaHost)
        self._replicas: dict[str, _Replica] = {}
        self._exited: builtins.list[ReplicaHandle] = []
        self._counter = 0

    def start(self, spec: ReplicaSpec) -> ReplicaHandle:
        bundle = self.bundles.get(spec.pool)
        if bundle is None:
            raise ValueError(f"pool {spec.pool!r} has no Ray bundle: give it to the actuator")
        self._counter += 1
        rid = f"{spec.pool}-{self._counter}"
        group = placement_group(
            [bundle.resources], strategy="STRICT_PACK", name=f"inferplane-{self.run_id}-{rid}"
        )
        actor: Any = self._host_class.options(**_actor_options(bundle, group)).remote(self.host)
        handle = ReplicaHandle(rid, spec, "", 0, self.clock())
        self._replicas[rid] = _Replica(handle, bundle, group, actor, actor.start.remote(spec, rid))
        log.info("placing %s on Ray (%s)", rid, bundle.describe())
        return handle

    def list(self) -> builtins.list[ReplicaHandle]:
        return [replica.handle for replica in self._replicas.values()]

    def reap(self) -> Sequence[ReplicaHandle]:
        """Fill in replicas that were placed, explain those still waiting, and hand back those
        whose process exited or whose node died since the last call."""
        self._poll_placing()
        self._poll_exits()
        exited, self._exited = self._exited, []
        return exited

    async def stop(self, replica_id: str, drain: bool = True) -> None:
        """Drain through the actor (SIGTERM; SIGKILL past the grace), then release it."""
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        replica.handle.expected_exit = True
        code = None
        if replica.exit is not None:
            with contextlib.suppress(RayError, TimeoutError):
                async with asyncio.timeout(self.host.grace_s + STOP_SLACK_S):
                    await replica.actor.stop.remote(drain)
                    code = await replica.exit
        if self._replicas.get(replica_id) is replica:  # not reaped meanwhile
            self._finish(replica, code)

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(rid) for rid in builtins.list(self._replicas)))
        self.kill_all()

    def kill_all(self) -> None:
        """Kill every actor and remove every group now; disconnect if this connected."""
        for replica in self._replicas.values():
            self._release(replica)
        if self.owns_connection and ray.is_initialized():
            ray.shutdown()

    # -- polling ----------------------------------------------------------------------------

    def _poll_placing(self) -> None:
        placing = [r for r in self._replicas.values() if r.placing is not None]
        if not placing:
            return
        done = _done([r.placing for r in placing])
        waiting = []
        for replica in placing:
            if replica.placing in done:
                self._placed(replica)
            elif self.clock() - replica.handle.started_at > PLACE_GRACE_S:
                waiting.append(replica)
        if waiting:
            self._explain(waiting)

    def _placed(self, replica: _Replica) -> None:
        try:
            placed: Placed = ray.get(replica.placing)
        except RayError as error:
            self._lost(replica, f"did not start: {error}")
            return
        handle = replica.handle
        handle.url, handle.pid, handle.log_path = placed.url, placed.pid, placed.log_path
        handle.node, handle.unplaced = placed.node_id, ""
        replica.placing, replica.exit = None, replica.actor.wait.remote()
        log.info("%s placed on node %s at %s (log there: %s)", handle.id, placed.node_id[:12],
                 placed.url, placed.log_path)  # fmt: skip

    def _explain(self, waiting: builtins.list[_Replica]) -> None:
        # Ray's per-node view (a developer API: untyped, no dashboard needed)
        available = ray_state.available_resources_per_node()  # type: ignore[no-untyped-call]
        total = ray_state.total_resources_per_node()  # type: ignore[no-untyped-call]
        for replica in waiting:
            pending = placement_group_table(replica.group).get("state") == "PENDING"
            reason = unplaced_reason(replica.bundle, available, total) if pending else ""
            if reason != replica.handle.unplaced and reason:
                log.warning("replica %s cannot be placed: %s", replica.handle.id, reason)
            replica.handle.unplaced = reason

    def _poll_exits(self) -> None:
        running = [r for r in self._replicas.values() if r.exit is not None]
        if not running:
            return
        done = _done([r.exit for r in running])
        for replica in running:
            if replica.exit not in done:
                continue
            try:
                code = ray.get(replica.exit)
            except RayError as error:
                self._lost(replica, f"its actor died (the node {replica.handle.node[:12]} with "
                                    f"it?): {type(error).__name__}")  # fmt: skip
            else:
                self._finish(replica, code)

    # -- endings ----------------------------------------------------------------------------

    def _lost(self, replica: _Replica, why: str) -> None:
        log.warning("replica %s lost: %s", replica.handle.id, why)
        self._finish(replica, LOST)

    def _finish(self, replica: _Replica, code: int | None) -> None:
        replica.handle.returncode = code
        self._release(replica)
        del self._replicas[replica.handle.id]
        self._exited.append(replica.handle)

    def _release(self, replica: _Replica) -> None:
        """Kill the actor (its server gets SIGTERM from the kernel) and free the reservation."""
        if replica.released or not ray.is_initialized():
            return
        replica.released = True
        with contextlib.suppress(RayError, ValueError):
            ray.kill(replica.actor, no_restart=True)
        with contextlib.suppress(RayError, ValueError):
            remove_placement_group(replica.group)


def _actor_options(bundle: Bundle, group: PlacementGroup) -> dict[str, Any]:
    """The actor takes the whole bundle, so Ray hands it (and its server) the bundle's GPUs."""
    options: dict[str, Any] = {
        "num_cpus": bundle.cpus,
        "num_gpus": bundle.gpus,
        "resources": bundle.custom,
        "max_restarts": 0,  # a dead replica is the controller's to restart, elsewhere
        "scheduling_strategy": PlacementGroupSchedulingStrategy(group, 0),
    }
    if bundle.memory_bytes is not None:
        options["memory"] = bundle.memory_bytes
    return options


def _done(refs: builtins.list[Any]) -> set[Any]:
    """Which of these calls have answered (a value or an error), without waiting."""
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
    return set(ready)
