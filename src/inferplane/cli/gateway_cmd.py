"""`inferplane gateway FLEET.yaml`: the OpenAI-compatible front door over a fleet's replicas."""

from typing import Annotated

import typer

from inferplane.cli.serve_cmd import parse_size
from inferplane.config import ConfigError
from inferplane.gateway.proxy import ProxyConfig
from inferplane.gateway.routing.health import HealthConfig
from inferplane.gateway.serve import GatewayOptions, run
from inferplane.gateway.settings import GatewaySettings
from inferplane.gateway.transport.retry import RetryConfig
from inferplane.gateway.transport.upstream import UpstreamConfig
from inferplane.http.backpressure import StreamLimits


def parse_replica(text: str) -> tuple[str, str]:
    """'POOL=URL' -> (pool, url)."""
    pool, sep, url = text.partition("=")
    if not sep or not pool or not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{text!r}: write POOL=URL, e.g. chat=http://127.0.0.1:8001")
    return pool, url


def gateway(  # noqa: PLR0917 (a typer command: one parameter per flag)
    fleet: Annotated[str, typer.Argument(help="The fleet file.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port.")] = 1,
    replica: Annotated[
        list[str] | None,
        typer.Option(help="POOL=URL of a replica of a managed pool (repeatable)."),
    ] = None,
    connect_timeout: Annotated[float, typer.Option(help="Seconds to connect.")] = 5.0,
    first_token_timeout: Annotated[
        float, typer.Option(help="Seconds to a stream's first byte.")
    ] = 60.0,
    total_timeout: Annotated[float, typer.Option(help="Seconds for a whole request.")] = 600.0,
    max_attempts: Annotated[int, typer.Option(help="Attempts per request (failover).")] = 3,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 4 * 2**20,
    stream_buffer: Annotated[
        str,
        typer.Option(
            help="Unsent bytes a client connection may hold (kernel and gateway buffers) "
            "before its response waits for the client, e.g. 256KiB."
        ),
    ] = "256KiB",
    stream_stall_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a waiting response may see its client read nothing before the "
            "connection is cut (and the replica's request with it)."
        ),
    ] = 10.0,
    health_interval: Annotated[float, typer.Option(help="Seconds between health checks.")] = 1.0,
    eject_after: Annotated[int, typer.Option(help="Consecutive failures that eject.")] = 3,
    access_log: Annotated[
        bool, typer.Option(help="Log one line per request and per routing decision.")
    ] = False,
    ledger: Annotated[
        bool, typer.Option(help="Write usage records to the fleet's ledger (ledger.url).")
    ] = True,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Serve the fleet's OpenAI API on HOST:PORT until SIGTERM or Ctrl-C."""
    try:
        settings = GatewaySettings(
            max_body_bytes=max_body_bytes,
            access_log=access_log,
            proxy=ProxyConfig(first_token_timeout, total_timeout),
            upstream=UpstreamConfig(connect_timeout_s=connect_timeout),
            health=HealthConfig(interval_s=health_interval, eject_after=eject_after),
            retry=RetryConfig(max_attempts=max_attempts),
            streams=StreamLimits(parse_size(stream_buffer), stream_stall_timeout),
        )
        replicas = tuple(parse_replica(text) for text in replica or ())
        options = GatewayOptions(
            fleet, host, port, workers, replicas, settings, log_level=log_level, ledger=ledger
        )
        typer.echo(f"inferplane: gateway for {fleet} at http://{host}:{port}/v1")
        run(options)
    except (ConfigError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


if __name__ == "__main__":  # `python -m inferplane.cli.gateway_cmd FLEET`, before registration
    typer.run(gateway)
