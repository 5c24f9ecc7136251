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
import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import uvicorn

from inferplane.config import load_fleet
from inferplane.config.schema import FleetConfig
from inferplane.gateway.admission.access import Access
from inferplane.gateway.admission.auth import load_keys
from inferplane.gateway.books.accounting import Accountant
from inferplane.gateway.books.metrics import GatewayMetrics
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.state import GatewayState
from inferplane.gateway.transport.app import GatewayApp
from inferplane.gateway.transport.coalesce import CoalescingHttpToolsProtocol
from inferplane.ledger.budgets import Budget
from inferplane.ledger.spool import SpoolAppender
from inferplane.ledger.store import UsageStore, normalise_url
from inferplane.ledger.writer_process import WriterProcess, catch_up
from inferplane.telemetry.logging import configure_logging
from inferplane.telemetry.ui import gateway_status_board, with_status_page

log = logging.getLogger(__name__)
BACKLOG = 4096
CLIENT_KEEPALIVE_S = 75  # clients (and load balancers) reuse connections; uvicorn's 5 s is short
WORKER_EXIT_TIMEOUT_S = 30.0
SALT_ENV = "INFERPLANE_LEDGER_SALT"  # the salt of users' pseudonyms in the ledger


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


def build_state(options: GatewayOptions, worker: int = 0) -> GatewayState:
    """Load the fleet and build one worker's state; raises ConfigError / ValueError early."""
    fleet = load_fleet(options.fleet)
    base_dir = Path(options.fleet).parent
    access = Access.from_fleet(fleet, base_dir, time.monotonic)
    metrics = GatewayMetrics()
    spool_name = f"gateway-{worker}" if options.ledger else None
    accountant, store = build_accounting(fleet, base_dir, metrics, spool_name)
    return GatewayState(
        fleet,
        options.settings,
        options.replica_map(),
        access=access,
        accountant=accountant,
        store=store,
        metrics=metrics,
    )


def build_accounting(
    fleet: FleetConfig, base_dir: Path, metrics: GatewayMetrics, spool_name: str | None
) -> tuple[Accountant, UsageStore | None]:
    """One process's books: key budgets from the keys file (enforced either way), and with a
    `spool_name` the usage records spooled for the ledger writer, plus the ledger's store
    (read once at start for the budgets' spend so far)."""
    spool = SpoolAppender(spool_dir(fleet), spool_name) if spool_name else None
    accountant = Accountant(
        fleet,
        _budgets(fleet, base_dir),
        metrics.cost,
        spool,
        time.monotonic,
        time.time,
        os.environ.get(SALT_ENV, ""),
    )
    return accountant, UsageStore(fleet.ledger.url) if spool_name else None


def _budgets(fleet: FleetConfig, base_dir: Path) -> list[Budget]:
    keys_file = fleet.auth.keys_file
    if keys_file is None:
        return []
    return load_keys(base_dir / Path(keys_file).expanduser()).budgets()


def spool_dir(fleet: FleetConfig) -> Path:
    """The ledger's spool folder: beside a SQLite ledger, else one per URL in ~/.inferplane."""
    url = normalise_url(fleet.ledger.url)
    if url.drivername == "sqlite" and url.database:
        database = Path(url.database)
        return database.parent / f"{database.name}.spool"
    digest = hashlib.sha256(fleet.ledger.url.encode()).hexdigest()[:16]
    return Path("~/.inferplane").expanduser() / f"spool-{digest}"


def start_ledger_writer(fleet: FleetConfig, log_level: str) -> WriterProcess:
    """Store what earlier runs spooled (budgets are seeded from the ledger), then start the
    writer process that stores what the workers spool from now on."""
    folder = spool_dir(fleet)
    stored = catch_up(fleet.ledger.url, folder)
    if stored:
        log.warning("stored %d usage records an earlier run left in %s", stored, folder)
    writer = WriterProcess(fleet.ledger.url, folder, log_level)
    writer.start()
    return writer


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve_worker(options: GatewayOptions, worker: int = 0) -> None:
    """One worker: its own state, socket and event loop, until SIGTERM or Ctrl-C."""
    configure_logging(json=True, level=options.log_level)
    if options.settings.access_log:  # access and route lines are INFO, whatever the level
        for name in ("inferplane.gateway.access", "inferplane.gateway.route"):
            logging.getLogger(name).setLevel(logging.INFO)
    state = build_state(options, worker)
    app = with_status_page(GatewayApp(state), gateway_status_board(state))
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,  # httptools, a response's writes joined
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # nothing reads the client address: no X-Forwarded-* per request
        timeout_keep_alive=CLIENT_KEEPALIVE_S,
        backlog=BACKLOG,
        log_level=options.log_level,
        log_config=None,  # configure_logging above decides: JSON lines
    )
    # What was built so far lives as long as the process: out of the collector's sight, a full
    # collection no longer walks every module's objects (it cost ~5% of a busy worker's time).
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run(sockets=[bind(options.host, options.port)])


def run(options: GatewayOptions) -> None:
    """Serve until SIGTERM or Ctrl-C: in this process, or in `workers` child processes."""
    fleet = build_state(replace(options, ledger=False)).fleet  # fails here on a bad fleet/flag
    writer = start_ledger_writer(fleet, options.log_level) if options.ledger else None
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
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=serve_worker, args=(options, index), name=f"gateway-{index}")
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
