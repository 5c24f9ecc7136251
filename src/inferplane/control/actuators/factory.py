"""Which actuator runs a fleet's replicas: a backend's name (the fleet's `backend:`, or
`inferplane up --backend`) to the function that builds its actuator.

A backend is one entry of `BACKENDS`; its module is imported only when it is chosen (Ray is a
large import that a local fleet never pays for).
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.base import Actuator
from inferplane.control.actuators.local import LocalActuator


class Backend(Actuator, Protocol):
    def kill_all(self) -> None:
        """The last resort on the way out (an exception): kill whatever is left, now."""
        ...


@dataclass(frozen=True)
class ActuatorSetup:
    """What every backend's actuator is built from."""

    fleet: FleetConfig
    log_dir: Path
    grace_s: float = 35.0  # a stop's drain, beyond which the replica is killed
    env: Mapping[str, str] = field(default_factory=dict)  # for the servers (the admin key)
    address: str | None = None  # the cluster to join, over the fleet file's (Ray)
    clock: Callable[[], float] = time.time


def _local(setup: ActuatorSetup) -> Backend:
    return LocalActuator(setup.log_dir, grace_s=setup.grace_s, clock=setup.clock, env=setup.env)


def _ray(setup: ActuatorSetup) -> Backend:
    from inferplane.control.actuators import ray  # noqa: PLC0415 (only when chosen)
    from inferplane.control.actuators.ray_replica import HostConfig  # noqa: PLC0415

    bundles = ray.bundles_of(setup.fleet)  # checked before anything connects
    env = tuple(sorted(setup.env.items()))
    host = HostConfig(str(setup.log_dir.resolve()), env=env, grace_s=setup.grace_s)
    owns = ray.connect(setup.address or setup.fleet.ray.address)
    return ray.RayActuator(bundles, host, clock=setup.clock, owns_connection=owns)


def _kubernetes(setup: ActuatorSetup) -> Backend:
    from inferplane.control.actuators import kubernetes  # noqa: PLC0415 (only when chosen)

    return kubernetes.in_cluster(setup.env, setup.grace_s, setup.clock)


BACKENDS: Mapping[str, Callable[[ActuatorSetup], Backend]] = MappingProxyType(
    {"local": _local, "ray": _ray, "kubernetes": _kubernetes}
)


def build_actuator(backend: str, setup: ActuatorSetup) -> Backend:
    """The actuator of `backend`; ValueError naming the known ones for any other."""
    make = BACKENDS.get(backend)
    if make is None:
        raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    return make(setup)
