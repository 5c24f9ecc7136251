"""The Ray actor that holds one replica on its node, inside the replica's placement group.

It runs `inferplane serve` there as its child process with the local actuator's own start,
drain and kill (the child's own process group, SIGTERM when the actor's process dies, SIGTERM
then SIGKILL past the grace period), bound to the node's address, and tells the driver where
the replica listens. `wait` returns once the child has exited, with its exit code: the driver
keeps one call of it in flight per replica, and a node that dies fails that call instead.

The actor is asynchronous: every method runs on one event loop thread that lives as long as
the actor (the kernel's parent-death signal follows the thread that started the child).
"""

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray

from inferplane.control.actuators.base import ReplicaSpec
from inferplane.control.actuators.local import LocalActuator

EXIT_POLL_S = 0.1


@dataclass(frozen=True)
class Placed:
    """Where a replica landed: its node, its URL, its process there and its log on that node."""

    node_id: str
    url: str
    pid: int
    log_path: str


@dataclass(frozen=True)
class HostConfig:
    """What every replica host of a fleet shares: where logs go, what runs, its environment."""

    log_dir: str
    command: tuple[str, ...] | None = None  # None: `python -m inferplane serve`
    env: tuple[tuple[str, str], ...] = ()  # secrets travel here, never on the command line
    grace_s: float = 35.0


class ReplicaHost:
    """One replica's process on one node (wrapped with `ray.remote` by the driver)."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.local: LocalActuator | None = None
        self.replica_id = ""

    async def start(self, spec: ReplicaSpec, replica_id: str) -> Placed:
        """Start `inferplane serve` on this node, on a free port of the node's address."""
        host = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        config = self.config
        command = None if config.command is None else list(config.command)
        self.local = LocalActuator(
            _log_dir(Path(config.log_dir)),
            command,
            host=host,
            grace_s=config.grace_s,
            clock=time.time,
            env=dict(config.env),
        )
        self.replica_id = replica_id
        handle = self.local.start(spec, replica_id=replica_id)
        node = ray.get_runtime_context().get_node_id()
        return Placed(node, handle.url, handle.pid, handle.log_path)

    async def wait(self) -> int | None:
        """Return once the replica's process has exited: its exit code."""
        while self.local is not None:
            exited = self.local.reap()
            if exited:
                return exited[0].returncode
            await asyncio.sleep(EXIT_POLL_S)
        return None

    async def stop(self, drain: bool) -> None:
        """SIGTERM (the server drains, then exits) or SIGKILL; SIGKILL past the grace."""
        if self.local is not None:
            await self.local.stop(self.replica_id, drain)


def _log_dir(wanted: Path) -> Path:
    """The driver's log folder where this node can write it, else one in the node's temp."""
    with contextlib.suppress(OSError):
        wanted.mkdir(parents=True, exist_ok=True)
        return wanted
    return Path(tempfile.gettempdir()) / "inferplane-logs"
