"""Replicas as child processes of this one: `inferplane serve` on a free port of 127.0.0.1.

Each child gets its own log file and its own process group (a Ctrl-C in the terminal reaches
`inferplane up`, which then drains its children in order, rather than every child at once).
On Linux each child also asks the kernel for SIGTERM when its parent dies, so even a killed
`inferplane up` leaves no orphan. Stopping sends SIGTERM (the server drains, then exits 0)
and, past the grace period, SIGKILL to the whole group.
"""

import asyncio
import builtins
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from inferplane.control.actuators.base import ReplicaHandle, ReplicaSpec

log = logging.getLogger(__name__)
Clock = Callable[[], float]
PR_SET_PDEATHSIG = 1
STOP_POLL_S = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_command() -> list[str]:
    """How to run `inferplane serve` with this interpreter: `python -m inferplane serve`."""
    return [sys.executable, "-m", "inferplane", "serve"]


def _child_setup() -> None:
    """In the child, before exec: own process group; SIGTERM when the parent dies (Linux)."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalActuator:
    """Starts, stops and watches `inferplane serve` child processes."""

    def __init__(
        self,
        log_dir: Path,
        command: Sequence[str] | None = None,
        *,
        host: str = "127.0.0.1",
        grace_s: float = 30.0,
        clock: Clock = time.monotonic,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.command = list(command) if command is not None else serve_command()
        self.host = host
        self.grace_s = grace_s
        self.clock = clock
        self.env = dict(env or {})  # secrets (the admin key) go here, never on the command line
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._handles: dict[str, ReplicaHandle] = {}
        self._counter = 0

    def start(self, spec: ReplicaSpec, replica_id: str | None = None) -> ReplicaHandle:
        """Start one replica; its id (and log file name) is `POOL-N` unless one is given."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        rid = replica_id or f"{spec.pool}-{self._counter}"
        port = free_port(self.host)
        log_path = self.log_dir / f"{rid}.log"
        argv = [*self.command, *spec.args, "--host", self.host, "--port", str(port)]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_child_setup,  # noqa: PLW1509 (async-signal-safe calls only)
            )
        handle = ReplicaHandle(
            rid, spec, f"http://{self.host}:{port}", proc.pid, self.clock(), str(log_path)
        )
        self._procs[rid], self._handles[rid] = proc, handle
        log.info("started %s (pid %d) at %s, log %s", rid, proc.pid, handle.url, log_path)
        return handle

    def list(self) -> list[ReplicaHandle]:
        return list(self._handles.values())

    def reap(self) -> Sequence[ReplicaHandle]:
        exited: builtins.list[ReplicaHandle] = []
        for rid, proc in list(self._procs.items()):
            code = proc.poll()
            if code is not None:
                handle = self._handles.pop(rid)
                del self._procs[rid]
                handle.returncode = code
                exited.append(handle)
        return exited

    async def stop(self, replica_id: str, drain: bool = True) -> None:
        """SIGTERM (the server drains), SIGKILL to the group after the grace period."""
        proc = self._procs.get(replica_id)
        if proc is None:
            return
        self._handles[replica_id].expected_exit = True
        _signal_group(proc, signal.SIGTERM if drain else signal.SIGKILL)
        deadline = self.clock() + (self.grace_s if drain else 5.0)
        while proc.poll() is None and self.clock() < deadline:
            await asyncio.sleep(STOP_POLL_S)
        if proc.poll() is None:
            log.warning("%s did not exit in time: SIGKILL", replica_id)
            _signal_group(proc, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 5.0)
        _signal_group(proc, signal.SIGKILL)  # anything the server left behind in its group

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(rid) for rid in list(self._procs)))
        self.reap()

    def kill_all(self) -> None:
        """The last resort (an exception on the way out): SIGKILL every group, wait."""
        for proc in self._procs.values():
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)


def _signal_group(proc: "subprocess.Popen[bytes]", sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
