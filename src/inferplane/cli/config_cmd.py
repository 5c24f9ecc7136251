"""`inferplane config ...`: check fleet files."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from inferplane.config import ConfigError, load_fleet

app = typer.Typer(help="Validate fleet files.", no_args_is_help=True)


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="The fleet file (YAML).")]) -> None:
    """Validate a fleet file; each error names its path and what to change."""
    console = Console(stderr=True)
    try:
        fleet = load_fleet(file)
    except ConfigError as error:
        console.print(f"[red]{file}[/red]: {len(error.issues)} problem(s)", highlight=False)
        for issue in error.issues:
            console.print(f"  {issue}", highlight=False, markup=False)
        raise typer.Exit(1) from error
    typer.echo(
        f"{file}: ok ({len(fleet.models)} models, {len(fleet.pools)} pools, "
        f"{len(fleet.routes)} routes)"
    )
