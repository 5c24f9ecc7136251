"""`inferplane up FLEET.yaml`: gateway, controller and replicas (local processes, or on a Ray
cluster with `--backend ray`)."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from inferplane.config import ConfigError
from inferplane.control.controller import ControllerConfig
from inferplane.control.up import UpOptions, serve


def up(  # noqa: PLR0917 (a typer command: one parameter per flag)
    fleet: Annotated[str, typer.Argument(help="The fleet file.")],
    host: Annotated[str, typer.Option(help="Address the gateway binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the gateway binds.")] = 8080,
    log_dir: Annotated[Path, typer.Option(help="Where each replica writes its log.")] = Path(
        ".inferplane/logs"
    ),
    state_dir: Annotated[Path, typer.Option(help="Where rollout state is kept.")] = Path(
        ".inferplane/state"
    ),
    interval: Annotated[float, typer.Option(help="Seconds between control loop ticks.")] = 1.0,
    kv_cache_memory: Annotated[
        str, typer.Option(help="KV cache of each generating replica, e.g. 256MiB.")
    ] = "256MiB",
    hold_timeout: Annotated[
        float, typer.Option(help="Seconds a request waits for a replica to come up.")
    ] = 60.0,
    drain_grace: Annotated[
        float, typer.Option(help="Seconds a replica may take to drain on scale-down.")
    ] = 30.0,
    ledger: Annotated[
        bool, typer.Option(help="Write usage records to the fleet's ledger (ledger.url).")
    ] = True,
    backend: Annotated[
        str | None,
        typer.Option(
            help="What runs the replicas: local | ray | kubernetes (default: the fleet's)."
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (auto, HOST:PORT); none: start a local Ray."),
    ] = None,
    file_sd: Annotated[
        Path | None,
        typer.Option(help="Prometheus file_sd targets file (default: in --state-dir)."),
    ] = None,
) -> None:
    """Run the fleet until SIGTERM or Ctrl-C; then drain and stop it all."""
    try:
        options = UpOptions(
            fleet,
            host,
            port,
            log_dir,
            state_dir,
            ControllerConfig(
                interval_s=interval,
                hold_timeout_s=hold_timeout,
                drain_grace_s=drain_grace,
                kv_cache_memory=kv_cache_memory,
            ),
            ledger=ledger,
            backend=backend,
            ray_address=ray_address,
            file_sd=file_sd,
        )
        typer.echo(f"inferplane: fleet {fleet} at http://{host}:{port}/v1 (logs in {log_dir})")
        asyncio.run(serve(options))
    except (ConfigError, ValueError, ConnectionError) as error:  # a Ray address unreached
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


if __name__ == "__main__":  # `python -m inferplane.cli.up_cmd FLEET`, before registration
    typer.run(up)
