"""Replicas as pods of each pool's Deployment (rendered by `inferplane deploy kubernetes`), for
a controller running in the cluster.

The controller stays the brain: it decides how many replicas a pool has and which one goes.
Starting a replica raises the Deployment's replica count through its scale subresource; the
replica is bound to the next pod of the pool that no replica holds, and its URL is that pod's
IP (the controller probes it and hands it to the gateway, which routes to pods directly).
Stopping one drains it through the server's admin API, waits for the kubelet to see it not
ready, marks it with the lowest `controller.kubernetes.io/pod-deletion-cost` (so the
ReplicaSet removes that pod and no other), then lowers the count by one.

A pod that disappears, or whose container restarted, is reaped as a crash; the Deployment
keeps a pod for it (a new one, or the same one restarted), and the controller's restart binds
that pod again instead of raising the count. Closing leaves the Deployments as they are: the
pods belong to the cluster, and a restarted controller binds them again.

With KEDA scaling the pools (`writes_scale=False`) the count is KEDA's: replicas are only bound
to pods, drained and marked.
"""

import asyncio
import builtins
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from inferplane.control.actuators import kubernetes_pods as pods
from inferplane.control.actuators.base import ReplicaHandle, ReplicaSpec

log = logging.getLogger(__name__)
Clock = Callable[[], float]
NAMESPACE_ENV = "INFERPLANE_KUBERNETES_NAMESPACE"  # set by the chart from the pod's namespace
KEDA_ENV = "INFERPLANE_KUBERNETES_KEDA"  # "true": KEDA owns the replica counts
ADMIN_KEY_ENV = "INFERPLANE_ADMIN_KEY"
NOT_FOUND = 404
NOT_READY_WAIT_S = 15.0  # the kubelet's readiness probe: period 5 s, 2 failures
POLL_S = 0.1


class KubernetesActuator:
    """Scales the pools' Deployments and binds replicas to their pods."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        *,
        port: int = pods.SERVE_PORT,
        admin_key: str = "",
        grace_s: float = 35.0,
        sync_s: float = 1.0,
        writes_scale: bool = True,
        clock: Clock = time.time,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.port = port
        self.admin_key = admin_key
        self.grace_s = grace_s
        self.sync_s = sync_s
        self.writes_scale = writes_scale
        self.clock = clock
        self._http = httpx.AsyncClient(timeout=grace_s + 5.0)
        self._handles: dict[str, ReplicaHandle] = {}
        self._bound: dict[str, str] = {}  # replica id -> pod name
        self._restarts: dict[str, int] = {}  # pod name -> its restart count when bound
        self._kept: dict[str, int] = {}  # pool -> pods the Deployment keeps for crashed replicas
        self._leaving: set[str] = set()  # replicas being stopped
        self._removing: set[str] = set()  # pods marked to go
        self._exited: list[ReplicaHandle] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._syncer: asyncio.Task[None] | None = None
        self._nudge = asyncio.Event()
        self._counter = 0

    # -- the protocol -----------------------------------------------------------------------

    def start(self, spec: ReplicaSpec) -> ReplicaHandle:
        """A replica of `spec.pool`: one more pod, or a pod the Deployment kept after a crash.
        Its URL is empty until a pod is bound and has an IP."""
        self._counter += 1
        handle = ReplicaHandle(f"{spec.pool}-{self._counter}", spec, "", 0, self.clock())
        self._handles[handle.id] = handle
        if self._kept.get(spec.pool, 0) > 0:
            self._kept[spec.pool] -= 1
        else:
            self._spawn(self._write_scale(spec.pool))
        self._ensure_syncing()
        return handle

    def list(self) -> builtins.list[ReplicaHandle]:
        return builtins.list(self._handles.values())

    def reap(self) -> Sequence[ReplicaHandle]:
        exited, self._exited = self._exited, []
        return exited

    async def stop(self, replica_id: str, drain: bool = True) -> None:
        """Drain, mark the pod to go first, lower the count, wait until the pod is gone."""
        handle = self._handles.get(replica_id)
        if handle is None or replica_id in self._leaving:
            return
        handle.expected_exit = True
        self._leaving.add(replica_id)
        pod = self._bound.get(replica_id)
        if drain and handle.url:
            await self._drain(handle)
        if pod is not None:
            if drain:
                await self._until(lambda: self._not_ready(pod), NOT_READY_WAIT_S)
            await self._mark(pod)
        self._forget(replica_id)
        await self._write_scale(handle.spec.pool)
        if pod is not None:
            await self._until(lambda: self._gone(pod), self.grace_s)
            self._removing.discard(pod)
        handle.returncode = 0
        self._exited.append(handle)

    async def close(self) -> None:
        """Stop watching; the Deployments keep their pods (the cluster owns them)."""
        tasks = [t for t in (self._syncer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()

    def kill_all(self) -> None:
        """Nothing runs in this process: the last resort has nothing to kill."""

    # -- scaling ----------------------------------------------------------------------------

    def desired(self, pool: str) -> int:
        """Replicas of `pool` (a leaving one counts until its pod is marked), plus pods kept
        for crashed ones."""
        mine = [h for h in self._handles.values() if h.spec.pool == pool]
        return len(mine) + self._kept.get(pool, 0)

    async def _write_scale(self, pool: str) -> None:
        if not self.writes_scale:
            return
        async with self._locks.setdefault(pool, asyncio.Lock()):
            replicas = self.desired(pool)
            try:
                await self.client.patch(
                    Deployment.Scale,
                    pods.pool_object(pool),
                    {"spec": {"replicas": replicas}},
                    namespace=self.namespace,
                    patch_type=PatchType.MERGE,
                )
            except httpx2.HTTPError as error:  # lightkube's client: ApiError included
                log.warning("pool %s: scaling to %d failed: %s", pool, replicas, error)
                for handle in self._pending(pool):
                    handle.unplaced = f"scaling {pods.pool_object(pool)} failed: {error}"
                return
        self._nudge.set()

    # -- drain and removal ------------------------------------------------------------------

    async def _drain(self, handle: ReplicaHandle) -> None:
        headers = {"authorization": f"Bearer {self.admin_key}"}
        try:
            await self._http.post(
                f"{handle.url}/admin/drain", json={"timeout_s": self.grace_s}, headers=headers
            )
        except httpx.HTTPError as error:
            log.warning("draining %s failed: %s", handle.id, error)

    async def _mark(self, pod: str) -> None:
        self._removing.add(pod)
        patch = {"metadata": {"annotations": {pods.DELETION_COST: pods.LOWEST_COST}}}
        try:
            await self.client.patch(
                Pod, pod, patch, namespace=self.namespace, patch_type=PatchType.MERGE
            )
        except httpx2.HTTPError as error:
            log.warning("marking pod %s failed: %s", pod, error)

    async def _get(self, pod: str) -> Pod | None:
        try:
            return await self.client.get(Pod, pod, namespace=self.namespace)
        except ApiError as error:
            if error.status.code == NOT_FOUND:
                return None
            raise

    async def _not_ready(self, pod: str) -> bool:
        found = await self._get(pod)
        return found is None or not pods.is_ready(found)

    async def _gone(self, pod: str) -> bool:
        return await self._get(pod) is None

    async def _until(self, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
        deadline = self.clock() + timeout_s
        while self.clock() < deadline:
            with contextlib.suppress(httpx2.HTTPError):
                if await check():
                    return
            await asyncio.sleep(POLL_S)

    # -- binding replicas to pods -----------------------------------------------------------

    def _ensure_syncing(self) -> None:
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.get_running_loop().create_task(self._sync_forever())
        self._nudge.set()

    async def _sync_forever(self) -> None:
        while True:
            try:
                await self.sync()
            except httpx2.HTTPError as error:  # lightkube's client: ApiError included
                log.warning("listing pods failed: %s", error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sync_s):
                    await self._nudge.wait()
            self._nudge.clear()

    async def sync(self) -> None:
        """Read each pool's pods: reap replicas whose pod went or restarted, bind waiting
        replicas to free pods, fill in URLs."""
        pools = {h.spec.pool for h in self._handles.values()} | set(self._kept)
        for pool in sorted(pools):
            labels: dict[str, Any] = dict(pods.pool_selector(pool))
            listing = self.client.list(Pod, namespace=self.namespace, labels=labels)
            self._sync_pool(pool, [pod async for pod in listing])

    def _sync_pool(self, pool: str, found: builtins.list[Pod]) -> None:
        by_name = {pods.name_of(pod): pod for pod in found}
        for replica_id, name in builtins.list(self._bound.items()):
            handle = self._handles[replica_id]
            if handle.spec.pool == pool and replica_id not in self._leaving:
                self._check_bound(handle, by_name.get(name))
        taken = set(self._bound.values()) | self._removing
        free = sorted(
            (p for p in found if pods.is_live(p) and pods.name_of(p) not in taken),
            key=lambda p: (not pods.is_ready(p), pods.created(p)),
        )
        for handle in self._pending(pool):
            if not free:
                break
            self._bind(handle, free.pop(0))

    def _check_bound(self, handle: ReplicaHandle, pod: Pod | None) -> None:
        name = self._bound[handle.id]
        if pod is None or not pods.is_live(pod):
            self._crashed(handle, -1 if pod is None else pods.last_exit_code(pod))
        elif pods.restarts(pod) > self._restarts.get(name, 0):
            self._crashed(handle, pods.last_exit_code(pod))
        elif not handle.url:
            handle.url = pods.pod_url(pod, self.port)

    def _crashed(self, handle: ReplicaHandle, code: int) -> None:
        """The pod went or its container restarted: reap the replica; the Deployment keeps a
        pod in its place, which the controller's restart binds."""
        log.warning("replica %s (pod %s) exited with %d", handle.id, self._bound[handle.id], code)
        self._forget(handle.id)
        self._kept[handle.spec.pool] = self._kept.get(handle.spec.pool, 0) + 1
        handle.returncode = code
        self._exited.append(handle)

    def _bind(self, handle: ReplicaHandle, pod: Pod) -> None:
        name = pods.name_of(pod)
        self._bound[handle.id] = name
        self._restarts[name] = pods.restarts(pod)
        handle.url, handle.node = pods.pod_url(pod, self.port), pods.node_of(pod)
        handle.log_path = f"kubectl -n {self.namespace} logs {name}"
        handle.unplaced = ""
        log.info("replica %s is pod %s (%s)", handle.id, name, handle.url or "no IP yet")

    def _pending(self, pool: str) -> builtins.list[ReplicaHandle]:
        return [
            h
            for h in self._handles.values()
            if h.spec.pool == pool and h.id not in self._bound and h.id not in self._leaving
        ]

    def _forget(self, replica_id: str) -> None:
        self._handles.pop(replica_id, None)
        name = self._bound.pop(replica_id, None)
        if name is not None:
            self._restarts.pop(name, None)
        self._leaving.discard(replica_id)

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def in_cluster(env: Mapping[str, str], grace_s: float, clock: Clock) -> KubernetesActuator:
    """The actuator of a controller running in a pod: the service account's credentials (or
    the kubeconfig outside a cluster), the namespace from the chart's environment, KEDA's
    ownership of the counts when the chart enabled it, the replicas' admin key."""
    client = AsyncClient(KubeConfig.from_env())
    namespace = os.environ.get(NAMESPACE_ENV) or client.namespace
    keda = os.environ.get(KEDA_ENV, "false").lower() == "true"
    admin_key = env.get(ADMIN_KEY_ENV, "")
    return KubernetesActuator(
        client, namespace, admin_key=admin_key, grace_s=grace_s, writes_scale=not keda, clock=clock
    )
