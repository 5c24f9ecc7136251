"""What the Kubernetes actuator reads off its cluster: the names it gives a pool's objects, and
plain facts about a pod (its URL, whether it is alive, how often its container restarted, the
exit code of its last run). Pure functions over lightkube's Pod model, shared with the chart
(inferplane.deploy), which must name objects exactly as the actuator looks them up.
"""

import hashlib
import re

from lightkube.models.core_v1 import ContainerStatus
from lightkube.resources.core_v1 import Pod

PREFIX = "inferplane"
POOL_LABEL = "inferplane-pool"
SERVE_PORT = 8000
MAX_NAME = 63
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
LOWEST_COST = str(-(2**31))  # int32's minimum: the ReplicaSet removes this pod first


def dns_label(name: str) -> str:
    """`name` as an RFC 1123 label; a hash suffix where cleaning changed or shortened it, so
    two pools never share a name."""
    clean = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "x"
    if clean == name and len(clean) <= MAX_NAME:
        return clean
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{clean[: MAX_NAME - 7].rstrip('-')}-{digest}"


def pool_object(pool: str) -> str:
    """The name of a pool's Deployment (and its Service and PodDisruptionBudget)."""
    return dns_label(f"{PREFIX}-{pool}")


def pool_selector(pool: str) -> dict[str, str]:
    return {POOL_LABEL: dns_label(pool)}


def name_of(pod: Pod) -> str:
    return pod.metadata.name if pod.metadata and pod.metadata.name else ""


def is_live(pod: Pod) -> bool:
    """Not being deleted and not finished: a pod a replica can be bound to."""
    deleting = pod.metadata is not None and pod.metadata.deletionTimestamp is not None
    phase = pod.status.phase if pod.status else None
    return not deleting and phase not in ("Succeeded", "Failed")


def pod_url(pod: Pod, port: int) -> str:
    """http://IP:PORT once the pod has an address; empty before."""
    ip = pod.status.podIP if pod.status else None
    return f"http://{ip}:{port}" if ip else ""


def node_of(pod: Pod) -> str:
    return (pod.spec.nodeName if pod.spec else None) or ""


def _container(pod: Pod) -> ContainerStatus | None:
    statuses = (pod.status.containerStatuses if pod.status else None) or []
    return statuses[0] if statuses else None


def restarts(pod: Pod) -> int:
    status = _container(pod)
    return status.restartCount if status else 0


def last_exit_code(pod: Pod) -> int:
    """The exit code of the container's previous run (-1 when the pod does not say)."""
    status = _container(pod)
    last = status.lastState if status else None
    terminated = last.terminated if last else None
    return terminated.exitCode if terminated else -1


def is_ready(pod: Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def created(pod: Pod) -> str:
    stamp = pod.metadata.creationTimestamp if pod.metadata else None
    return stamp.isoformat() if stamp else ""
