"""`inferplane up`: the gateway, the controller and the actuator in one process.

The actuator is the backend's (the fleet's `backend:`, or `--backend`): local child processes,
or replicas on a Ray cluster (`--ray-address`, or a local Ray started for the run). With local
processes the CPU replicas are pinned to this host's cores (control/cores.py,
control/core_book.py): a fleet whose CPU replicas need more cores than the host has is
refused here, as `inferplane config check` refuses it, unless it says to share. The
controller keeps a Prometheus file_sd file of every replica's /metrics endpoint beside the
rollout state (emptied on the way out).

The gateway's ASGI app serves the fleet; /admin/fleet answers with the controller's view
(what `inferplane status` shows) and /admin/rollouts starts, shows and aborts rollouts (what
`inferplane rollout` calls). Rollout state lives beside the logs, in `state_dir`. Usage
records go to the fleet's ledger as with `inferplane gateway`: spooled here, stored by a
ledger writer process; key budgets are enforced.
SIGTERM or Ctrl-C stops the gateway from taking requests,
then every replica is drained and stopped; on any way out the actuator kills what is left,
so no child outlives `inferplane up`.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from inferplane.config import ConfigError, FleetConfig, load_fleet
from inferplane.control.actuators.factory import ActuatorSetup, Backend, build_actuator
from inferplane.control.controller import Controller, ControllerConfig
from inferplane.control.core_book import CoreBook
from inferplane.control.cores import check_cores, plan_cores
from inferplane.control.file_sd import FileSD
from inferplane.control.fleet_status import FLEET_PATH, FleetStatus
from inferplane.control.inventory import host_cpus
from inferplane.control.rollout_api import ROLLOUTS_PATH, RolloutApi
from inferplane.control.rollout_runtime import rollout_pool, with_rollout_pools
from inferplane.gateway import builder
from inferplane.gateway.builder import GatewaySetup
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.state import GatewayState
from inferplane.gateway.transport.asgi import Receive, Scope, Send, respond
from inferplane.telemetry.ui import ASGIApp

log = logging.getLogger(__name__)
ADMIN_KEY_ENV = "INFERPLANE_ADMIN_KEY"
SPOOL_NAME = "up-gateway"  # this process's spool segment, beside `inferplane gateway`'s
FILE_SD_NAME = "prometheus-targets.json"


@dataclass(frozen=True)
class UpOptions:
    """Everything `inferplane up` takes; defaults live here and the CLI mirrors them."""

    fleet: str
    host: str = "127.0.0.1"
    port: int = 8080
    log_dir: Path = Path(".inferplane/logs")
    state_dir: Path = Path(".inferplane/state")
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    log_level: str = "warning"
    ledger: bool = True  # usage records to fleet.ledger.url; budgets are enforced either way
    backend: str | None = None  # what runs the replicas; None: the fleet file's `backend:`
    ray_address: str | None = None  # the Ray cluster to join, over the fleet file's ray.address
    file_sd: Path | None = None  # Prometheus targets; None: FILE_SD_NAME in state_dir

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")


class FleetApp:
    """The gateway app, plus GET /admin/fleet (the controller's view as JSON) and the rollout
    endpoint."""

    def __init__(self, gateway: ASGIApp, status: FleetStatus, rollouts: RolloutApi) -> None:
        self.gateway = gateway
        self.status = status
        self.rollouts = rollouts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == FLEET_PATH:
            await respond(send, 200, orjson.dumps(self.status.snapshot()))
        elif scope["type"] == "http" and path.startswith(ROLLOUTS_PATH):
            await self.rollouts(scope, receive, send)
        else:
            await self.gateway(scope, receive, send)


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM once it has stopped, which would kill this process
    before it drains its replicas; here the signal only asks the server to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True


def build(options: UpOptions) -> tuple[GatewayState, Controller, Backend]:
    """The three parts, wired; raises ConfigError / ValueError on a bad fleet file."""
    loaded = load_fleet(options.fleet)
    backend = options.backend or loaded.backend
    cores = core_book(loaded, options.fleet) if backend == "local" else None
    fleet = with_rollout_pools(loaded)
    spool_name = SPOOL_NAME if options.ledger else None
    setup = GatewaySetup(fleet, Path(options.fleet).parent, options.settings, {}, spool_name)
    state = builder.build_state(setup)
    # In a cluster the replicas read the key from a Secret, and so does this process.
    admin_key = (
        options.controller.admin_key or os.environ.get(ADMIN_KEY_ENV) or secrets.token_urlsafe(24)
    )
    config = _with_key(options.controller, admin_key, options.state_dir)
    actuator = build_actuator(
        backend,
        ActuatorSetup(
            fleet,
            options.log_dir,
            grace_s=config.drain_grace_s + 5.0,
            env={ADMIN_KEY_ENV: admin_key},
            address=options.ray_address,
            clock=time.time,  # the controller's clock: uptimes and backoff compare the two
        ),
    )
    controller = Controller(fleet, state, actuator, config, cores=cores)
    controller.lifecycle.on_publish = _file_sd(options, controller).write
    return state, controller, actuator


def core_book(fleet: FleetConfig, source: str) -> CoreBook:
    """This host's cores for the fleet's CPU replicas (a rollout's canary pool sized as the
    pool it stands beside); ConfigError when they do not fit and the fleet does not share."""
    host = host_cpus()
    if fleet.cpu.cores is not None and fleet.cpu.cores != len(host.cpus):
        log.warning("the fleet plans for %d cores; placing on this host's %s",
                    fleet.cpu.cores, host.describe())  # fmt: skip
    plan = plan_cores(fleet, host)
    check = check_cores(fleet, plan)
    if check.problems:
        raise ConfigError(source, check.problems)
    for note in check.notes:
        log.warning("%s", note)
    sizes = {**plan.sizes, **{rollout_pool(name): size for name, size in plan.sizes.items()}}
    return CoreBook(replace(plan, sizes=sizes))


def _file_sd(options: UpOptions, controller: Controller) -> FileSD:
    return FileSD(options.file_sd or options.state_dir / FILE_SD_NAME, controller.pools)


def _with_key(config: ControllerConfig, key: str, state_dir: Path) -> ControllerConfig:
    rollout_dir = config.rollout_dir or str(state_dir)
    fields: dict[str, Any] = {**config.__dict__, "admin_key": key, "rollout_dir": rollout_dir}
    return ControllerConfig(**fields)


async def serve(options: UpOptions) -> None:
    """Serve until SIGTERM / Ctrl-C, then drain and stop every replica."""
    state, controller, actuator = build(options)
    ledger = builder.start_ledger_writer(state.fleet, options.log_level) if options.ledger else None
    try:
        await _serve(options, state, controller, actuator)
    finally:
        if ledger is not None:
            ledger.stop()  # after the gateway's last sweep: it stores what that spooled


async def _serve(
    options: UpOptions, state: GatewayState, controller: Controller, actuator: Backend
) -> None:
    rollouts = RolloutApi(controller.rollouts, state.access)
    app = FleetApp(builder.build_app(state), FleetStatus(controller), rollouts)
    streams = options.settings.streams
    config = builder.uvicorn_config(
        app, options.log_level, streams, host=options.host, port=options.port
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_exit)
    loop_task = asyncio.create_task(controller.run())
    try:
        await server.serve()
    finally:
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
        try:
            await controller.close()
        finally:
            actuator.kill_all()
            _file_sd(options, controller).clear()  # no target outlives the fleet


def run(options: UpOptions) -> None:
    asyncio.run(serve(options))
