"""Running the gateway: one process, or N worker processes sharing the port.

Workers bind the same address with SO_REUSEPORT, so the kernel spreads connections over them
with no accept lock and no parent in the data path. Each worker holds its own replica health,
scrapes and in-flight counts (the balancer needs only approximate load). uvicorn runs on
uvloop with the httptools parser, a response's head and body written at once
(gateway/transport/coalesce.py); the parent forwards SIGTERM / SIGINT to its workers.
Each worker logs JSON lines and serves the status page at /ui. With the ledger on, each
worker appends its usage records to a spool of its own, and one ledger writer process (started
here, after it has stored what earlier runs left) stores them in the fleet's ledger
(fleet.ledger.url): the workers never run SQL.
"""

import contextlib
import logging
import multiprocessing
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import uvicorn

from inferplane.config import load_fleet
from inferplane.config.schema import FleetConfig
from inferplane.gateway import builder
from inferplane.gateway.admission.limits_zone import LimitsZone
from inferplane.gateway.builder import GatewaySetup
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.state import GatewayState
from inferplane.http.collector import settle_heap
from inferplane.telemetry.logging import configure_logging

log = logging.getLogger(__name__)
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
    ledger: bool = True  # usage records to fleet.ledger.url; budgets are enforced either way

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


def build_state(
    options: GatewayOptions,
    worker: int = 0,
    zone: LimitsZone | None = None,
    metrics_dir: Path | None = None,
) -> GatewayState:
    """Load the fleet and build one worker's state; raises ConfigError / ValueError early.
    `zone`: the rate-limit buckets the workers share, `metrics_dir`: the folder where they
    share their metrics (both None with one worker)."""
    setup = GatewaySetup(
        worker_share(load_fleet(options.fleet), options.workers),
        Path(options.fleet).parent,
        options.settings,
        options.replica_map(),
        f"gateway-{worker}" if options.ledger else None,
        zone,
        counts_regenerations=worker == 0,  # the writer's totals, counted by one worker
        worker=worker,
        metrics_dir=metrics_dir,
    )
    return builder.build_state(setup)


def worker_share(fleet: FleetConfig, workers: int) -> FleetConfig:
    """The fleet as one of `workers` workers admits from it. Each worker's overload gate counts
    only the requests it holds, and the kernel spreads connections over the workers
    (SO_REUSEPORT), so each takes 1/workers of every replica's batch slots and of the queue:
    all together never send a replica more than its slots, which the deadline needs (two
    workers with the whole count each admitted twice the slots, and TTFT p99 went past it).
    A worker the kernel gives more than its share refuses a little early instead."""
    if workers == 1:
        return fleet
    overload = fleet.overload
    share = overload.model_copy(
        update={
            "slots": max(1, overload.slots // workers),
            "queue_size": overload.queue_size // workers,
        }
    )
    return fleet.model_copy(update={"overload": share})


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(builder.BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve_worker(
    options: GatewayOptions,
    worker: int = 0,
    zone: LimitsZone | None = None,
    metrics_dir: Path | None = None,
) -> None:
    """One worker: its own state, socket and event loop, until SIGTERM or Ctrl-C."""
    configure_logging(json=True, level=options.log_level)
    if options.settings.access_log:  # access and route lines are INFO, whatever the level
        for name in ("inferplane.gateway.access", "inferplane.gateway.route"):
            logging.getLogger(name).setLevel(logging.INFO)
    state = build_state(options, worker, zone, metrics_dir)
    app = builder.build_app(state)
    config = builder.uvicorn_config(app, options.log_level, options.settings.streams)
    settle_heap()  # what was built so far lives as long as the process
    uvicorn.Server(config).run(sockets=[bind(options.host, options.port)])


def run(options: GatewayOptions) -> None:
    """Serve until SIGTERM or Ctrl-C: in this process, or in `workers` child processes."""
    fleet = build_state(replace(options, ledger=False)).fleet  # fails here on a bad fleet/flag
    writer = builder.start_ledger_writer(fleet, options.log_level) if options.ledger else None
    # uvicorn re-raises the SIGTERM it stopped on; as an exception it leaves through `finally`
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        _serve(options)
    finally:
        if writer is not None:
            writer.stop()  # after the workers: it stores what their last sweeps spooled


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _serve(options: GatewayOptions) -> None:
    if options.workers == 1:
        serve_worker(options)
        return
    metrics_dir = Path(tempfile.mkdtemp(prefix="inferplane-gateway-metrics-"))
    try:
        _serve_workers(options, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_workers(options: GatewayOptions, metrics_dir: Path) -> None:
    context = multiprocessing.get_context("spawn")
    zone = LimitsZone.create(context)  # a key's limits hold across the workers together
    workers = [
        context.Process(
            target=serve_worker, args=(options, index, zone, metrics_dir), name=f"gateway-{index}"
        )
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
