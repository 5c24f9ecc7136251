"""Replicas as child processes of this one: `inferplane serve` on a free port of 127.0.0.1.

Each child gets its own log file and its own process group (a Ctrl-C in the terminal reaches
`inferplane up`, which then drains its children in order, rather than every child at once).
On Linux each child also asks the kernel for SIGTERM when its parent dies, so even a killed
`inferplane up` leaves no orphan. Stopping sends SIGTERM (the server drains, then exits 0)
and, past the grace period, SIGKILL to the whole group.

A spec with cores starts its child pinned to them (the affinity is set in the child before
exec, so the server, its engine process and every thread they start inherit it) with
OMP_NUM_THREADS at the spec's thread count, which torch takes as its own thread count.
`pin` moves a running replica's whole process group onto other cores.
"""

import asyncio
import builtins
import contextlib
import ctypes
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
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


def _child_setup(cpus: Sequence[int] = ()) -> None:
    """In the child, before exec: own process group; SIGTERM when the parent dies (Linux);
    pinned to `cpus` when given."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if cpus:
        os.sched_setaffinity(0, cpus)


def thread_env(threads: int | None) -> dict[str, str]:
    """The environment that sets a replica's torch / OpenMP / MKL thread count."""
    if threads is None:
        return {}
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


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
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1", **thread_env(spec.threads)}
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                # async-signal-safe calls only (setpgid, prctl, sched_setaffinity)
                preexec_fn=functools.partial(_child_setup, spec.cpus),  # noqa: PLW1509
            )
        handle = ReplicaHandle(
            rid, spec, f"http://{self.host}:{port}", proc.pid, self.clock(), str(log_path)
        )
        self._procs[rid], self._handles[rid] = proc, handle
        pinned = f", cpus {list(spec.cpus)}" if spec.cpus else ""
        log.info("started %s (pid %d) at %s%s, log %s", rid, proc.pid, handle.url, pinned,
                 log_path)  # fmt: skip
        return handle

    def pin(self, replica_id: str, cpus: Sequence[int]) -> None:
        """Move every thread of the replica's process group onto `cpus` (its thread count
        stays what it started with)."""
        proc = self._procs.get(replica_id)
        if proc is None:
            return
        for pid in _group_members(proc.pid):
            for tid in _threads(pid):
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    os.sched_setaffinity(tid, cpus)
        handle = self._handles[replica_id]
        handle.spec = replace(handle.spec, cpus=tuple(cpus))
        log.info("moved %s to cpus %s", replica_id, list(cpus))

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


def _group_members(pgid: int) -> Iterator[int]:
    """The processes of a process group (the server and the engine process it spawned)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            yield int(entry.name)


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _signal_group(proc: "subprocess.Popen[bytes]", sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
