"""A real `inferplane gateway` process on a free port of 127.0.0.1, for end-to-end tests."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from inferplane.control.actuators.local import free_port
from tests.e2e.server_process import wait_until_ok

READY_TIMEOUT_S = 30.0


def gateway_command() -> list[str]:
    """`python -m inferplane gateway` once the command is registered, else the module itself."""
    from inferplane.cli.app import app  # noqa: PLC0415

    names = {command.name for command in app.registered_commands}
    if "gateway" in names:
        return [sys.executable, "-m", "inferplane", "gateway"]
    return [sys.executable, "-m", "inferplane.cli.gateway_cmd"]


class GatewayProcess:
    def __init__(self, fleet: Path, args: Sequence[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # No usage records unless a test asks (--ledger, with a tmp ledger URL in its fleet):
        # the default ledger is in the home directory.
        books = [] if "--ledger" in args else ["--no-ledger"]
        command = [*gateway_command(), str(fleet), "--port", str(self.port), *books, *args]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_up(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        wait_until_ok(self.process, f"{self.url}/health", "gateway", self.log, timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def running_gateway(fleet: Path, args: Sequence[str], log_path: Path) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(fleet, args, log_path)
    try:
        gateway.wait_up()
        yield gateway
    finally:
        gateway.stop()
