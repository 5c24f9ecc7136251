"""`inferplane deploy kubernetes FLEET.yaml --out DIR`: the fleet's Helm chart, or with
`--format manifests` the same objects rendered with the chart's default values (and `--set`
overrides) as plain YAML that `kubectl apply -f DIR` takes, no Helm needed."""

from pathlib import Path
from typing import Annotated, Literal

import typer

from inferplane.config.errors import ConfigError
from inferplane.config.loader import load_fleet

app = typer.Typer(help="Render deployment artefacts from a fleet file.", no_args_is_help=True)
Format = Literal["chart", "manifests"]


def render(  # noqa: PLR0917 (one parameter per flag)
    fleet_path: str,
    out: Path,
    output_format: str = "chart",
    sets: tuple[str, ...] = (),
    namespace: str = "default",
    admin_key: str | None = None,
) -> list[Path]:
    """Write the chart or the manifests under `out`; the files written."""
    # The chart code imports the control plane: only this command pays for it.
    from inferplane.deploy import chart as charts  # noqa: PLC0415
    from inferplane.deploy.values import default_values  # noqa: PLC0415

    if output_format not in ("chart", "manifests"):
        raise ValueError(f"--format must be chart or manifests, got {output_format!r}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: give a new or empty directory")
    fleet = load_fleet(fleet_path)
    chart = charts.build_chart(fleet, charts.load_raw(fleet_path), default_values(fleet, admin_key))
    if output_format == "chart":
        if sets:
            raise ValueError("--set applies to --format manifests; pass it to helm for a chart")
        return charts.write_chart(chart, out)
    return charts.write_manifests(charts.render_manifests(chart, sets, namespace), out)


@app.command("kubernetes")
def kubernetes(
    fleet: Annotated[str, typer.Argument(help="The fleet file.")],
    out: Annotated[Path, typer.Option(help="Directory to write (new or empty).")],
    output_format: Annotated[
        str, typer.Option("--format", help="chart (Helm) or manifests (plain YAML).")
    ] = "chart",
    set_values: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE over the default values (manifests only)."),
    ] = None,
    namespace: Annotated[
        str, typer.Option(help="Namespace the manifests are applied in (RBAC names it).")
    ] = "default",
) -> None:
    """Render a Helm chart (or plain manifests) that runs the fleet in a Kubernetes cluster."""
    try:
        written = render(fleet, out, output_format, tuple(set_values or ()), namespace)
    except (ConfigError, ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"wrote {len(written)} files under {out}")
    if output_format == "chart":
        typer.echo(f"install: helm install inferplane {out} --namespace NAMESPACE")
    else:
        typer.echo(f"apply: kubectl apply -n {namespace} -f {out}")
