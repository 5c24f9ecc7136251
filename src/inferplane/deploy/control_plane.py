"""The control plane: `inferplane up --backend kubernetes` (gateway + controller) as one
Deployment, its Service, the fleet file as a ConfigMap, the admin key Secret, and the RBAC the
controller needs to scale the pools' Deployments and mark and watch their pods.

One replica, replaced with `Recreate`: two controllers would fight over the replica counts.
"""

from typing import Any

from inferplane.control.actuators.kubernetes import KEDA_ENV, NAMESPACE_ENV
from inferplane.deploy.expr import Fmt, Namespace, v
from inferplane.deploy.names import CONTROL_PLANE, FLEET_MOUNT, control_plane_labels
from inferplane.deploy.pools import ADMIN_SECRET_KEY, admin_env, image

STATE_DIR = "/var/lib/inferplane"
FLEET_FILE = "fleet.yaml"
KEYS_SECRET = "inferplane-keys"
KEYS_MOUNT = f"{FLEET_MOUNT}/auth"
# What the Kubernetes actuator reads and writes: the pools' Deployments and their scale, and
# the pods it drains, marks with a deletion cost and learns addresses from.
RBAC_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"],
     "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
     "verbs": ["get", "list", "watch"]},
]  # fmt: skip


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": control_plane_labels()}


def service_account() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(CONTROL_PLANE)}


def role() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(CONTROL_PLANE),
        "rules": RBAC_RULES,
    }


def role_binding() -> dict[str, Any]:
    subject = {"kind": "ServiceAccount", "name": CONTROL_PLANE, "namespace": Namespace()}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(CONTROL_PLANE),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CONTROL_PLANE},
        "subjects": [subject],
    }


def fleet_config_map(fleet_text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{CONTROL_PLANE}-fleet"),
        "data": {FLEET_FILE: fleet_text},
    }


def admin_secret() -> dict[str, Any]:
    """Rendered only while `admin.key` is set (the chart's condition)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": v("admin", "secretName"), "labels": control_plane_labels()},
        "type": "Opaque",
        "stringData": {ADMIN_SECRET_KEY: v("admin", "key")},
    }


def _args() -> list[Any]:
    return [
        "up", f"{FLEET_MOUNT}/{FLEET_FILE}", "--backend", "kubernetes",
        "--host", "0.0.0.0", "--port", Fmt((v("controlPlane", "port"),)),
        "--hold-timeout", Fmt((v("controlPlane", "holdTimeoutSeconds"),)),
        "--log-dir", f"{STATE_DIR}/logs", "--state-dir", f"{STATE_DIR}/state",
    ]  # fmt: skip


def _env() -> list[dict[str, Any]]:
    namespace = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    return [
        admin_env(),
        {"name": NAMESPACE_ENV, "valueFrom": namespace},
        {"name": KEDA_ENV, "value": Fmt((v("keda", "enabled"),))},
        {"name": "HOME", "value": STATE_DIR},  # the default SQLite ledger lives under ~
    ]


def _container(with_keys: bool) -> dict[str, Any]:
    mounts = [
        {"name": "fleet", "mountPath": FLEET_MOUNT, "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
    ]
    if with_keys:
        mounts.append({"name": "keys", "mountPath": KEYS_MOUNT, "readOnly": True})
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
    return {
        "name": "control-plane",
        "image": image(),
        "imagePullPolicy": v("image", "pullPolicy"),
        "command": ["inferplane"],
        "args": _args(),
        "env": _env(),
        "ports": [{"name": "http", "containerPort": v("controlPlane", "port"), "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "resources": v("controlPlane", "resources"),
        "volumeMounts": mounts,
    }


def deployment(with_keys: bool) -> dict[str, Any]:
    labels = control_plane_labels()
    volumes: list[dict[str, Any]] = [
        {"name": "fleet", "configMap": {"name": f"{CONTROL_PLANE}-fleet"}},
        {"name": "state", "emptyDir": {}},
    ]
    if with_keys:
        volumes.append({"name": "keys", "secret": {"secretName": KEYS_SECRET}})
    pod_spec = {
        "serviceAccountName": CONTROL_PLANE,
        "nodeSelector": v("controlPlane", "nodeSelector"),
        "tolerations": v("controlPlane", "tolerations"),
        "containers": [_container(with_keys)],
        "volumes": volumes,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(CONTROL_PLANE),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def service() -> dict[str, Any]:
    port = {"name": "http", "port": v("controlPlane", "port"), "targetPort": "http"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(CONTROL_PLANE),
        "spec": {
            "type": v("controlPlane", "serviceType"),
            "selector": control_plane_labels(),
            "ports": [port],
        },
    }
