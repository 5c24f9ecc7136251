"""`inferplane config ...`: check fleet files.

Beyond the schema and its references, a fleet run by local processes is checked against the
host's cores (declared under `cpu:`, else this machine's): CPU replicas that need more cores
than the host has are refused unless the fleet says to share (control/cores.py).
"""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from inferplane.config import ConfigError, ConfigIssue, FleetConfig, load_fleet
from inferplane.control.cores import check_cores, cpu_pools, plan_cores
from inferplane.control.inventory import fleet_cpus

app = typer.Typer(help="Validate fleet files.", no_args_is_help=True)


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="The fleet file (YAML).")]) -> None:
    """Validate a fleet file; each error names its path and what to change."""
    console = Console(stderr=True)
    try:
        fleet = load_fleet(file)
        cores = _check_cores(fleet, str(file))
    except ConfigError as error:
        console.print(f"[red]{file}[/red]: {len(error.issues)} problem(s)", highlight=False)
        for issue in error.issues:
            console.print(f"  {issue}", highlight=False, markup=False)
        raise typer.Exit(1) from error
    typer.echo(
        f"{file}: ok ({len(fleet.models)} models, {len(fleet.pools)} pools, "
        f"{len(fleet.routes)} routes)"
    )
    for line in cores:
        typer.echo(f"  {line}")


def _check_cores(fleet: FleetConfig, source: str) -> list[str]:
    """What the CPU replicas get on the host, in lines; ConfigError when they do not fit."""
    pools = cpu_pools(fleet)
    if fleet.backend != "local" or not pools:
        return []
    try:
        plan = plan_cores(fleet, fleet_cpus(fleet.cpu))
    except ValueError as error:
        raise ConfigError(source, [ConfigIssue("", str(error))]) from error
    result = check_cores(fleet, plan)
    if result.problems:
        raise ConfigError(source, result.problems)
    sizes = ", ".join(f"{name} {plan.size(name)}" for name in pools)
    return [f"cores: {plan.describe()}; per CPU replica: {sizes}", *result.notes]
