"""Assembling a gateway: the one builder both `inferplane gateway` and `inferplane up` use.

From a loaded fleet it builds one process's state (access: keys, limits, rules; metrics; the
books: budgets, and with a spool name the usage records spooled for the ledger writer), the
ASGI app with the status page at /ui, and the uvicorn configuration (uvloop, the httptools
parser with a response's writes joined, long client keep-alive). It also starts the ledger
writer process. How many processes serve the app, and on what socket, is the caller's choice.
"""

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from inferplane.config.schema import FleetConfig
from inferplane.gateway.access import Access
from inferplane.gateway.admission.auth import load_keys
from inferplane.gateway.admission.limits_zone import LimitsZone, ZoneView
from inferplane.gateway.app import GatewayApp
from inferplane.gateway.books.accounting import Accountant
from inferplane.gateway.books.feedback import FeedbackBook, feedback_spool
from inferplane.gateway.books.metrics import GatewayMetrics
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.state import GatewayState
from inferplane.gateway.transport.coalesce import CoalescingHttpToolsProtocol
from inferplane.http.backpressure import StreamLimits
from inferplane.ledger.budgets import Budget
from inferplane.ledger.regeneration_counts import RegenerationEcho
from inferplane.ledger.spool import SpoolAppender
from inferplane.ledger.store import UsageStore, normalise_url
from inferplane.ledger.writer_process import WriterProcess, catch_up
from inferplane.telemetry.ui import ASGIApp, gateway_status_board, with_status_page
from inferplane.telemetry.worker_metrics import SharedMetrics
from inferplane.telemetry.worker_totals import SharedTotals

log = logging.getLogger(__name__)
BACKLOG = 4096
CLIENT_KEEPALIVE_S = 75  # clients (and load balancers) reuse connections; uvicorn's 5 s is short
SALT_ENV = "INFERPLANE_LEDGER_SALT"  # the salt of users' pseudonyms in the ledger


@dataclass(frozen=True)
class GatewaySetup:
    """What one gateway process is built from."""

    fleet: FleetConfig
    base_dir: Path  # the fleet file's folder: relative paths in it (keys file) start here
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    replicas: dict[str, list[str]] = field(default_factory=dict)  # managed pool -> URLs
    spool_name: str | None = None  # None: no usage records (the ledger off)
    limits_zone: LimitsZone | None = None  # rate-limit buckets the workers share
    counts_regenerations: bool = True  # with the ledger on: count those its writer finds
    worker: int = 0  # which of the gateway's workers this process is
    metrics_dir: Path | None = None  # where the workers share their metrics (None: one worker)


def build_state(setup: GatewaySetup) -> GatewayState:
    """One process's state: access, metrics and books over the fleet's pools."""
    zone = None if setup.limits_zone is None else setup.limits_zone.attach()
    access = Access.from_fleet(setup.fleet, setup.base_dir, time.monotonic, zone)
    metrics = GatewayMetrics()
    accountant, store = build_accounting(
        setup.fleet, setup.base_dir, metrics, setup.spool_name, zone
    )
    return GatewayState(
        setup.fleet,
        setup.settings,
        setup.replicas,
        access=access,
        accountant=accountant,
        store=store,
        metrics=metrics,
        feedback=build_feedback(setup.fleet, metrics, setup.spool_name),
        regenerations=_regeneration_echo(setup),
        shared_metrics=(
            None
            if setup.metrics_dir is None
            else SharedMetrics(setup.metrics_dir, setup.worker, metrics.registry)
        ),
    )


def _regeneration_echo(setup: GatewaySetup) -> RegenerationEcho | None:
    if setup.spool_name is None or not setup.counts_regenerations:
        return None
    return RegenerationEcho(spool_dir(setup.fleet))


def build_feedback(
    fleet: FleetConfig, metrics: GatewayMetrics, spool_name: str | None
) -> FeedbackBook:
    """One process's feedback book; with a `spool_name` its events go to the ledger too."""
    spool = feedback_spool(spool_dir(fleet), spool_name) if spool_name else None
    salt = os.environ.get(SALT_ENV, "")
    return FeedbackBook(metrics.registry, spool, time.time, salt)


def build_app(state: GatewayState) -> ASGIApp:
    """The gateway's ASGI app with the status page at /ui (showing every worker's counts
    when there are several)."""
    shared = state.shared_metrics
    totals = (
        None
        if shared is None
        else SharedTotals(shared.folder, shared.worker, state.metrics.registry)
    )
    return with_status_page(GatewayApp(state), gateway_status_board(state, totals=totals))


def uvicorn_config(
    app: ASGIApp, log_level: str, streams: StreamLimits | None = None, **where: Any
) -> uvicorn.Config:
    """How the gateway runs on uvicorn; `streams` bounds what a client may leave unread
    (default: GatewaySettings'); `where` is host and port, or nothing (sockets given to
    `Server.run`)."""
    return uvicorn.Config(
        app,
        loop="uvloop",
        # httptools, a response's writes joined, stalled readers cut off
        http=CoalescingHttpToolsProtocol.with_limits(streams or StreamLimits()),
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # nothing reads the client address: no X-Forwarded-* per request
        timeout_keep_alive=CLIENT_KEEPALIVE_S,
        backlog=BACKLOG,
        log_level=log_level,
        log_config=None,  # the caller's logging set-up decides
        **where,
    )


def build_accounting(
    fleet: FleetConfig,
    base_dir: Path,
    metrics: GatewayMetrics,
    spool_name: str | None,
    zone: ZoneView | None = None,
) -> tuple[Accountant, UsageStore | None]:
    """One process's books: key budgets from the keys file (enforced either way; their
    tallies in `zone` when the workers share one), and with a `spool_name` the usage records
    spooled for the ledger writer, plus the ledger's store (read once at start for the
    budgets' spend so far)."""
    spool = SpoolAppender(spool_dir(fleet), spool_name) if spool_name else None
    accountant = Accountant(
        fleet,
        _budgets(fleet, base_dir),
        metrics.cost,
        spool,
        time.monotonic,
        time.time,
        os.environ.get(SALT_ENV, ""),
        zone,
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
