"""A small Kubernetes API server for the actuator's tests, over real HTTP on 127.0.0.1: the few
endpoints the actuator calls, with the semantics it relies on.

- Deployments and their scale subresource (GET, merge / strategic PATCH of spec.replicas);
- pods: list by label selector, GET, merge / strategic PATCH of annotations;
- a ReplicaSet controller: pods created up to the count; on scale-down the victims ranked as
  Kubernetes ranks them (not ready first, then the lowest pod-deletion-cost, then the newest);
- a kubelet: each pod runs the stub replica process on its own loopback IP (127.0.0.N) and a
  shared port, the Ready condition follows its /ready, a crashed container is restarted in
  place (restartCount + 1, lastState.terminated.exitCode), a deleted pod gets SIGTERM and goes
  once its process has exited.
"""

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

STUB = [sys.executable, str(Path(__file__).parents[1] / "stub_replica.py")]
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
RECONCILE_S = 0.05
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakePod:
    name: str
    deployment: str
    labels: dict[str, str]
    ip: str
    seq: int
    annotations: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    restarts: int = 0
    last_exit: int | None = None
    deleting: bool = False

    def to_json(self, namespace: str) -> dict[str, Any]:
        created = (EPOCH + timedelta(seconds=self.seq)).isoformat().replace("+00:00", "Z")
        meta: dict[str, Any] = {
            "name": self.name, "namespace": namespace, "labels": self.labels,
            "annotations": self.annotations, "creationTimestamp": created,
            "uid": f"uid-{self.seq}", "resourceVersion": str(self.seq),
        }  # fmt: skip
        if self.deleting:
            meta["deletionTimestamp"] = created
        container: dict[str, Any] = {"name": "serve", "image": "inferplane", "imageID": "",
                                     "ready": self.ready, "restartCount": self.restarts,
                                     "state": {"running": {"startedAt": created}}}  # fmt: skip
        if self.last_exit is not None:
            container["lastState"] = {"terminated": {"exitCode": self.last_exit}}
        ready = {"type": "Ready", "status": "True" if self.ready else "False"}
        status = {"phase": "Running", "podIP": self.ip, "conditions": [ready],
                  "containerStatuses": [container]}  # fmt: skip
        spec = {"nodeName": "node-a", "containers": [{"name": "serve", "image": "inferplane"}]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


@dataclass
class FakeDeployment:
    name: str
    labels: dict[str, str]
    replicas: int = 0


class KubeApi:
    """The API server, the ReplicaSet controller and the kubelet in one object."""

    def __init__(self, namespace: str, port: int, command: list[str] = STUB) -> None:
        self.namespace = namespace
        self.port = port
        self.command = command
        self.deployments: dict[str, FakeDeployment] = {}
        self.pods: dict[str, FakePod] = {}
        self.requests: list[tuple[str, str]] = []
        self._seq = 0
        self._http = httpx.AsyncClient(timeout=0.5)
        self._runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.url = ""

    def add_deployment(self, name: str, labels: dict[str, str]) -> None:
        self.deployments[name] = FakeDeployment(name, labels)

    # -- HTTP -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_failures])
        base = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
        app.router.add_get(base + "/scale", self.get_scale)
        app.router.add_patch(base + "/scale", self.patch_scale)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.get_pod)
        app.router.add_patch("/api/v1/namespaces/{ns}/pods/{name}", self.patch_pod)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._loop_task = asyncio.create_task(self._reconcile_forever())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for pod in self.pods.values():
            if pod.proc is not None:
                pod.proc.kill()
                pod.proc.wait(5)
        await self._http.aclose()
        if self._runner is not None:
            await self._runner.cleanup()

    def _deployment(self, request: web.Request) -> FakeDeployment:
        self._check_namespace(request)
        found = self.deployments.get(request.match_info["name"])
        if found is None:
            raise _status(404, f'deployments.apps "{request.match_info["name"]}" not found')
        return found

    def _check_namespace(self, request: web.Request) -> None:
        if request.match_info["ns"] != self.namespace:
            raise _status(404, f"namespace {request.match_info['ns']} not found")

    def _scale_json(self, deployment: FakeDeployment) -> dict[str, Any]:
        live = [p for p in self.pods.values() if p.deployment == deployment.name]
        meta = {"name": deployment.name, "namespace": self.namespace}
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": meta,
                "spec": {"replicas": deployment.replicas},
                "status": {"replicas": len(live)}}  # fmt: skip

    async def get_scale(self, request: web.Request) -> web.Response:
        return web.json_response(self._scale_json(self._deployment(request)))

    async def patch_scale(self, request: web.Request) -> web.Response:
        deployment = self._deployment(request)
        body = await _merge_patch(request)
        replicas = body.get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise _status(422, f"spec.replicas: invalid value {replicas!r}")
        deployment.replicas = replicas
        self.requests.append(("scale", f"{deployment.name}={replicas}"))
        return web.json_response(self._scale_json(deployment))

    async def list_pods(self, request: web.Request) -> web.Response:
        self._check_namespace(request)
        wanted = _selector(request.query.get("labelSelector", ""))
        items = [p.to_json(self.namespace) for p in self.pods.values()
                 if all(p.labels.get(k) == v for k, v in wanted.items())]  # fmt: skip
        body = {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"},
                "items": items}  # fmt: skip
        return web.json_response(body)

    def _pod(self, request: web.Request) -> FakePod:
        self._check_namespace(request)
        pod = self.pods.get(request.match_info["name"])
        if pod is None:
            raise _status(404, f'pods "{request.match_info["name"]}" not found')
        return pod

    async def get_pod(self, request: web.Request) -> web.Response:
        return web.json_response(self._pod(request).to_json(self.namespace))

    async def patch_pod(self, request: web.Request) -> web.Response:
        pod = self._pod(request)
        annotations = (await _merge_patch(request)).get("metadata", {}).get("annotations", {})
        for key, value in annotations.items():
            if value is None:
                pod.annotations.pop(key, None)
            elif isinstance(value, str):
                pod.annotations[key] = value
            else:
                raise _status(400, f"annotation {key} must be a string")
        self.requests.append(("annotate", f"{pod.name}:{json.dumps(annotations)}"))
        return web.json_response(pod.to_json(self.namespace))

    # -- the ReplicaSet controller and the kubelet ------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            for deployment in self.deployments.values():
                self._replicaset(deployment)
            await asyncio.gather(*(self._kubelet(pod) for pod in list(self.pods.values())))
            await asyncio.sleep(RECONCILE_S)

    def _replicaset(self, deployment: FakeDeployment) -> None:
        live = [p for p in self.pods.values() if p.deployment == deployment.name
                and not p.deleting]  # fmt: skip
        for _ in range(deployment.replicas - len(live)):
            self._create(deployment)
        excess = len(live) - deployment.replicas
        ranked = sorted(live, key=lambda p: (p.ready, int(p.annotations.get(DELETION_COST, "0")),
                                             -p.seq))  # fmt: skip
        for pod in ranked[: max(excess, 0)]:
            pod.deleting = True
            if pod.proc is not None and pod.proc.poll() is None:
                pod.proc.send_signal(signal.SIGTERM)

    def _create(self, deployment: FakeDeployment) -> None:
        self._seq += 1
        name = f"{deployment.name}-{self._seq:05d}"
        pod = FakePod(name, deployment.name, dict(deployment.labels), f"127.0.0.{10 + self._seq}",
                      self._seq)  # fmt: skip
        pod.proc = self._run(pod)
        self.pods[name] = pod

    def _run(self, pod: FakePod) -> subprocess.Popen[bytes]:
        argv = [*self.command, "--host", pod.ip, "--port", str(self.port)]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def _kubelet(self, pod: FakePod) -> None:
        assert pod.proc is not None
        code = pod.proc.poll()
        if code is not None and pod.deleting:
            del self.pods[pod.name]
        elif code is not None:  # a crash: restart the container in place
            pod.restarts, pod.last_exit, pod.ready = pod.restarts + 1, code, False
            pod.proc = self._run(pod)
        else:
            pod.ready = await self._probe(pod)

    async def _probe(self, pod: FakePod) -> bool:
        try:
            response = await self._http.get(f"http://{pod.ip}:{self.port}/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def kill(self, pod_name: str) -> None:
        """The container crashes (SIGKILL): the kubelet restarts it."""
        proc = self.pods[pod_name].proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)


MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


async def _merge_patch(request: web.Request) -> dict[str, Any]:
    if request.content_type not in MERGE_TYPES:
        raise _status(415, f"unsupported patch type {request.content_type}")
    body = await request.json()
    if not isinstance(body, dict):
        raise _status(400, "a merge patch is an object")
    return body


def _selector(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    return {key: value for key, value in pairs}


class ApiFailure(Exception):
    """An error the API answers with a Status object (Content-Type exactly application/json,
    as the API server sends it and clients check)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def response(self) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": str(self), "code": self.code}  # fmt: skip
        headers = {"Content-Type": "application/json"}
        return web.Response(body=json.dumps(body).encode(), status=self.code, headers=headers)


@web.middleware
async def _failures(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except ApiFailure as failure:
        return failure.response()
    return response


def _status(code: int, message: str) -> ApiFailure:
    return ApiFailure(code, message)
