"""Per managed pool: a Deployment of `inferplane serve`, a headless Service (the controller and
Prometheus reach each pod by its IP) and a PodDisruptionBudget.

The Deployment carries no `replicas`: the controller owns the count (through the scale
subresource), so re-applying the chart never resets it. Readiness is /ready (loaded, awake,
not draining), liveness /health; a startup probe gives a model time to load. Before SIGTERM
the preStop hook drains the server through its admin API (new requests refused, in-flight
ones finished) and the grace period outlasts that drain, so stopping a pod loses no request.
"""

import math
from typing import Any

from inferplane.config.schema import FleetConfig, PoolSpec
from inferplane.control.replicas import serve_args
from inferplane.deploy.expr import Fmt, V, merge, v
from inferplane.deploy.names import (
    CACHE_MOUNT,
    SERVE_PORT,
    pool_labels,
    pool_object,
)
from inferplane.deploy.values import CPU_POOL_CPUS

ADMIN_KEY_ENV = "INFERPLANE_ADMIN_KEY"
ADMIN_SECRET_KEY = "admin-key"
# Run by the preStop hook with the drain timeout as argv[1]: POST /admin/drain and wait until
# the server holds no request (or the timeout passes). Only the image's Python is needed.
DRAIN_SCRIPT = (
    "import os, sys, urllib.request as r; "
    f"r.urlopen(r.Request('http://127.0.0.1:{SERVE_PORT}/admin/drain', "
    "data=('{\"timeout_s\": %s}' % sys.argv[1]).encode(), "
    f"headers={{'authorization': 'Bearer ' + os.environ['{ADMIN_KEY_ENV}'], "
    "'content-type': 'application/json'}), timeout=int(sys.argv[1]) + 5)"
)
KV_FLAG = "--kv-cache-memory"


def pool_value(pool: str, *path: str) -> V:
    return v("pools", pool, *path)


def container_args(pool: str, fleet: FleetConfig, spec: PoolSpec) -> list[str | V]:
    """`serve` and the pool's arguments, the KV cache size from values, bound to all
    addresses of the pod."""
    args: list[str | V] = ["serve", *serve_args(spec.model, fleet.models[spec.model], "-")]
    args[args.index(KV_FLAG) + 1] = pool_value(pool, "kvCacheMemory")
    return [*args, "--host", "0.0.0.0", "--port", str(SERVE_PORT)]  # every address of the pod


def admin_env() -> dict[str, Any]:
    ref = {"name": v("admin", "secretName"), "key": ADMIN_SECRET_KEY}
    return {"name": ADMIN_KEY_ENV, "valueFrom": {"secretKeyRef": ref}}


def image() -> Fmt:
    return Fmt((v("image", "repository"), ":", v("image", "tag")))


def _probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
    get = {"path": path, "port": "http"}
    return {"httpGet": get, "periodSeconds": period_s, "failureThreshold": failures}


def serve_container(pool: str, fleet: FleetConfig, spec: PoolSpec) -> dict[str, Any]:
    drain_s = Fmt((pool_value(pool, "drainTimeoutSeconds"),))
    return {
        "name": "serve",
        "image": image(),
        "imagePullPolicy": v("image", "pullPolicy"),
        "command": ["inferplane"],
        "args": container_args(pool, fleet, spec),
        "env": [
            admin_env(),
            {"name": "INFERPLANE_CACHE_DIR", "value": CACHE_MOUNT},
            *thread_env(spec),
        ],
        "ports": [{"name": "http", "containerPort": SERVE_PORT, "protocol": "TCP"}],
        "startupProbe": _probe("/health", 5, 120),  # up to 10 minutes to load a model
        "readinessProbe": _probe("/ready", 5, 2),
        "livenessProbe": _probe("/health", 10, 6),
        "lifecycle": {"preStop": {"exec": {"command": ["python", "-c", DRAIN_SCRIPT, drain_s]}}},
        "resources": pool_value(pool, "resources"),
        "volumeMounts": [{"name": "model-cache", "mountPath": CACHE_MOUNT}],
    }


def thread_env(spec: PoolSpec) -> list[dict[str, str]]:
    """torch / OpenMP threads as many as the pod's CPUs (else each pod would start one per
    core of its node, and the pods on a node would thrash each other's cores)."""
    cpu = spec.resources.cpu
    if cpu is None and spec.resources.uses_gpu:
        return []
    threads = str(max(1, math.floor(cpu or CPU_POOL_CPUS)))
    return [{"name": name, "value": threads} for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")]


def deployment(pool: str, fleet: FleetConfig, spec: PoolSpec) -> dict[str, Any]:
    labels = pool_labels(pool)
    selector = {key: labels[key] for key in labels if key != "app.kubernetes.io/component"}
    # A GPU pool has no spare GPU to surge onto: replace one pod at a time instead.
    surge = {"maxSurge": 0, "maxUnavailable": 1} if spec.resources.uses_gpu else {
        "maxSurge": 1, "maxUnavailable": 0}  # fmt: skip
    pod_spec = {
        "terminationGracePeriodSeconds": pool_value(pool, "terminationGracePeriodSeconds"),
        "nodeSelector": pool_value(pool, "nodeSelector"),
        "tolerations": pool_value(pool, "tolerations"),
        "containers": [serve_container(pool, fleet, spec)],
        "volumes": [merge({"name": "model-cache"}, pool_value(pool, "modelCache"))],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": pool_object(pool), "labels": labels},
        "spec": {
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": surge},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def headless_service(pool: str) -> dict[str, Any]:
    labels = pool_labels(pool)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": pool_object(pool), "labels": labels},
        "spec": {
            "clusterIP": "None",
            "selector": labels,
            "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": "http"}],
        },
    }


def disruption_budget(pool: str) -> dict[str, Any]:
    labels = pool_labels(pool)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": pool_object(pool), "labels": labels},
        "spec": {
            "maxUnavailable": pool_value(pool, "maxUnavailable"),
            "selector": {"matchLabels": labels},
        },
    }
