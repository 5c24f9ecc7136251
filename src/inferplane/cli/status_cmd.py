"""`inferplane status`: the fleet of a running `inferplane up`, as tables (refreshable).

It reads the controller's JSON at /admin/fleet on the gateway: per pool its tier, replicas
ready / desired, queue, requests/s, TTFT and cost per hour; per replica its phase, pid and load.
"""

import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from inferplane.control.fleet_status import FLEET_PATH


def fetch(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    response = httpx.get(url.rstrip("/") + FLEET_PATH, timeout=timeout_s)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def pools_table(status: dict[str, Any]) -> Table:
    table = Table(title=f"pools (total ${status['cost_per_hour_usd']:.2f}/h)")
    for column in ("pool", "model", "tier", "ready/desired", "queue", "req/s", "TTFT", "$/h"):
        table.add_column(column)
    for pool in status["pools"]:
        table.add_row(
            pool["name"],
            pool["model"],
            pool["tier"],
            f"{pool['ready']}/{pool['desired']} ({pool['min']}..{pool['max']})",
            str(pool["queue"]),
            f"{pool['requests_per_s']:.2f}",
            _ms(pool["ttft_s"]),
            f"{pool['cost_per_hour_usd']:.2f}",
        )
    return table


def replicas_table(status: dict[str, Any]) -> Table:
    table = Table(title="replicas")
    for column in ("replica", "url", "pid", "phase", "in flight", "waiting", "KV", "TTFT"):
        table.add_column(column)
    for pool in status["pools"]:
        for r in pool["replicas"]:
            table.add_row(
                r["id"],
                r["url"],
                str(r["pid"]),
                _phase(r),
                str(r["in_flight"]),
                str(r["waiting"]),
                f"{r['kv_usage']:.0%}",
                _ms(r["ttft_s"]),
            )
    return table


def _phase(replica: dict[str, Any]) -> str:
    """The phase, with why a replica waits for a node (a cluster backend) when it does."""
    unplaced = replica.get("unplaced")
    return f"{replica['phase']}: {unplaced}" if unplaced else str(replica["phase"])


def render(status: dict[str, Any]) -> Group:
    return Group(pools_table(status), replicas_table(status))


def status(
    url: Annotated[str, typer.Option(help="The gateway of `inferplane up`.")] = (
        "http://127.0.0.1:8080"
    ),
    watch: Annotated[bool, typer.Option(help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show pools, replicas, states, tiers, queue, requests/s, TTFT and cost per hour."""
    try:
        first = fetch(url)
    except httpx.HTTPError as error:
        typer.echo(f"error: no fleet at {url}{FLEET_PATH} ({error}); is `inferplane up` running?")
        raise typer.Exit(1) from error
    console = Console()
    if not watch:
        console.print(render(first))
        return
    with Live(render(first), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(interval)
            try:
                live.update(render(fetch(url)))
            except httpx.HTTPError as error:
                live.update(f"[red]lost the fleet at {url}: {error}[/red]")


if __name__ == "__main__":  # `python -m inferplane.cli.status_cmd`, before registration
    typer.run(status)
