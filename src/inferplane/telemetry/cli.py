"""`inferplane telemetry`: print or install the Grafana dashboard and the alert rules."""

from pathlib import Path
from typing import Annotated

import typer

from inferplane.telemetry.artifacts import ALERT_RULES, DASHBOARD, install_artifacts, read_artifact

app = typer.Typer(help="Operator artefacts: Grafana dashboard, Prometheus alert rules.")


@app.command()
def dashboard() -> None:
    """Print the Grafana dashboard JSON (import it, or provision it from a file)."""
    typer.echo(read_artifact(DASHBOARD), nl=False)


@app.command()
def alerts() -> None:
    """Print the Prometheus alert rules (a rule file for `rule_files:`)."""
    typer.echo(read_artifact(ALERT_RULES), nl=False)


@app.command()
def install(
    directory: Annotated[Path, typer.Argument(help="Where to write the files.")],
    force: Annotated[bool, typer.Option(help="Replace files that exist.")] = False,
) -> None:
    """Write the dashboard and the alert rules into DIRECTORY."""
    try:
        for path in install_artifacts(directory, overwrite=force):
            typer.echo(str(path))
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
