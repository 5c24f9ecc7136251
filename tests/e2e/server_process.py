"""A real `inferplane serve` process on a free port of 127.0.0.1, for end-to-end tests."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from inferplane.control.actuators.local import free_port, serve_command

READY_TIMEOUT_S = 60.0


def wait_until_ok(
    process: "subprocess.Popen[bytes]",
    url: str,
    what: str,
    log: Callable[[], str],
    timeout_s: float,
) -> None:
    """Poll `url` until it answers 200; fail at once (with the log) if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout_s}s:\n{log()}")


class ServerProcess:
    def __init__(
        self, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        command = [*serve_command(), *args, "--port", str(self.port)]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        wait_until_ok(self.process, f"{self.url}/ready", "server", self.log, timeout_s)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float) -> int:
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def running_server(
    args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A ready server; `env` adds to (or overrides) this process's environment."""
    server = ServerProcess(args, log_path, env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()
