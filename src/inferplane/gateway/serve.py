"""Running the gateway: one process, or N worker processes sharing the port.

Workers bind the same address with SO_REUSEPORT, so the kernel spreads connections over them
with no accept lock and no parent in the data path. Each worker holds its own replica health,
scrapes and in-flight counts (the balancer needs only approximate load). uvicorn runs on
uvloop with the httptools parser; the parent forwards SIGTERM / SIGINT to its workers.
"""

import contextlib
import logging
import multiprocessing
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import uvicorn

from inferplane.config import load_fleet
from inferplane.gateway.access import Access
from inferplane.gateway.app import GatewayApp
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.state import GatewayState

log = logging.getLogger(__name__)
BACKLOG = 4096
CLIENT_KEEPALIVE_S = 75  # clients (and load balancers) reuse connections; uvicorn's 5 s is short
WORKER_EXIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class GatewayOptions:
    """Everything `inferplane gateway` takes; defaults live here and the CLI mirrors them."""

    fleet: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    replicas: tuple[tuple[str, str], ...] = ()  # (pool, url) pairs for managed pools
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    log_level: str = "warning"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def replica_map(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for pool, url in self.replicas:
            grouped.setdefault(pool, []).append(url)
        return grouped


def build_state(options: GatewayOptions) -> GatewayState:
    """Load the fleet and build one worker's state; raises ConfigError / ValueError early."""
    fleet = load_fleet(options.fleet)
    access = Access.from_fleet(fleet, Path(options.fleet).parent, time.monotonic)
    return GatewayState(fleet, options.settings, options.replica_map(), access=access)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve_worker(options: GatewayOptions) -> None:
    """One worker: its own state, socket and event loop, until SIGTERM or Ctrl-C."""
    state = build_state(options)
    config = uvicorn.Config(
        GatewayApp(state),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        timeout_keep_alive=CLIENT_KEEPALIVE_S,
        backlog=BACKLOG,
        log_level=options.log_level,
    )
    uvicorn.Server(config).run(sockets=[bind(options.host, options.port)])


def run(options: GatewayOptions) -> None:
    """Serve until SIGTERM or Ctrl-C: in this process, or in `workers` child processes."""
    build_state(options)  # fail here, once, on a bad fleet file or replica flag
    if options.workers == 1:
        serve_worker(options)
        return
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=serve_worker, args=(options,), name=f"gateway-{index}")
        for index in range(options.workers)
    ]
    for worker in workers:
        worker.start()

    def forward(_signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    worker.terminate()  # SIGTERM: uvicorn finishes open requests, then exits

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.join()
