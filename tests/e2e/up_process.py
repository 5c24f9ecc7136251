"""`inferplane up` as a real child process for end-to-end tests: started on a free port with a
fleet file, watched through /admin/fleet, and stopped with every replica it started (a test
that fails half-way leaves no server behind)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from inferplane.control.actuators.local import free_port

Pool = dict[str, Any]
Started = TypeVar("Started", bound="UpProcess")


class UpProcess:
    """One `inferplane up FLEET` run; `pool(name)` reads a pool (the first without a name) and
    remembers its replicas' pids, so that `stop` can kill what the run left."""

    def __init__(self, tmp_path: Path, fleet: str, args: Sequence[str] = ()) -> None:
        fleet_path = tmp_path / "fleet.yaml"
        fleet_path.write_text(fleet)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp_path / "up.log"
        argv = [sys.executable, "-m", "inferplane", "up", str(fleet_path)]
        argv += ["--port", self.url.rsplit(":", 1)[1], "--log-dir", str(tmp_path / "logs")]
        argv += ["--interval", "0.2", *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        self.pids: set[int] = set()

    def pool(self, name: str | None = None) -> Pool:
        pools = httpx.get(f"{self.url}/admin/fleet", timeout=5).json()["pools"]
        named = [p for p in pools if name is None or p["name"] == name]
        body: Pool = named[0] if named else {"replicas": [], "ready": 0}
        self.pids |= {r["pid"] for r in body["replicas"] if r["pid"]}
        return body

    def until(
        self, check: Callable[[Pool], bool], timeout_s: float, name: str | None = None
    ) -> Pool:
        """Poll the pool until `check` holds; the log's tail in the error if `up` died or
        the time ran out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                pool = self.pool(name)
                if check(pool):
                    return pool
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.1)
        raise TimeoutError(f"{self.pool(name)}\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Kill `up` and any replica it started that is still there."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running(up: Started, ready_s: float = 30, name: str | None = None) -> Iterator[Started]:
    """`up` once its admin API answers; stopped at the end whatever happened."""
    try:
        up.until(lambda pool: True, timeout_s=ready_s, name=name)
        yield up
    finally:
        up.stop()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
