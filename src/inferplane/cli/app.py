"""The `inferplane` command: a typer app that each subsystem adds its commands to."""

from typing import Annotated

import typer

from inferplane import __version__
from inferplane.cli import (
    config_cmd,
    cost_cmd,
    deploy_cmd,
    gateway_cmd,
    generate_cmd,
    keys_cmd,
    models_cmd,
    place_cmd,
    plan_cmd,
    quality_cmd,
    rollout_cmd,
    serve_cmd,
    sim_cmd,
    status_cmd,
    up_cmd,
)
from inferplane.telemetry import cli as telemetry_cli

app = typer.Typer(
    name="inferplane",
    help="A self-hostable AI inference platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(models_cmd.app, name="models")
app.command("plan")(plan_cmd.plan)
app.add_typer(cost_cmd.app, name="cost")
app.add_typer(keys_cmd.app, name="keys")
app.command("serve")(serve_cmd.serve)
app.command("up")(up_cmd.up)
app.command("status")(status_cmd.status)
app.add_typer(generate_cmd.app)
app.command("gateway")(gateway_cmd.gateway)
app.add_typer(telemetry_cli.app, name="telemetry")
app.command("place")(place_cmd.place_command)
app.add_typer(rollout_cmd.app, name="rollout")
app.add_typer(deploy_cmd.app, name="deploy")
app.command("sim")(sim_cmd.sim)
app.add_typer(quality_cmd.app, name="quality")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"inferplane {__version__}")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """A self-hostable AI inference platform."""


def main() -> None:
    app()
