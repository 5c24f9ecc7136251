"""`inferplane quality report`: confidence, feedback and input drift per model version, from
the ledger (and a running gateway's drift gauges with --gateway)."""

import json
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from inferplane.cli.cost_cmd import _ledger_url, _open_store
from inferplane.config.durations import parse_duration
from inferplane.ledger.quality_report import (
    QualityRow,
    Version,
    build_quality_report,
    drift_from_metrics,
    to_json,
    write_quality_chart,
)

app = typer.Typer(help="Model quality: confidence, feedback and input drift.", no_args_is_help=True)


def _number(value: float | None, form: str = ".3f") -> str:
    return "-" if value is None else format(value, form)


def _cells(row: QualityRow) -> list[str]:
    drift = ", ".join(f"{signal} {score:.3f}" for signal, score in sorted(row.drift.items()))
    return [
        row.model,
        row.model_version,
        f"{row.requests:,}",
        _number(row.mean_logprob),
        _number(row.low_confidence_share, ".1%"),
        _number(row.mean_rating, ".2f"),
        f"{row.thumbs_up}/{row.thumbs_down}",
        str(row.regenerations),
        str(row.abandoned),
        _number(row.negative_rate, ".1%"),
        drift or "-",
    ]


def _table(rows: list[QualityRow], since: str) -> Table:
    table = Table(title=f"Model quality, last {since}")
    headers = ("model", "version", "requests", "mean logprob", "low conf", "rating", "up/down",
               "regens", "abandoned", "negative", "drift")  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header in ("model", "version") else "right")
    for row in rows:
        table.add_row(*_cells(row))
    return table


def _drift(gateway: str | None) -> dict[Version, dict[str, float]]:
    if gateway is None:
        return {}
    try:
        answer = httpx.get(f"{gateway.rstrip('/')}/metrics", timeout=10)
        answer.raise_for_status()
    except httpx.HTTPError as error:
        typer.echo(f"error: could not read {gateway}/metrics: {error}", err=True)
        raise typer.Exit(1) from error
    return drift_from_metrics(answer.text)


@app.command("report")
def report(
    *,
    since: Annotated[str, typer.Option(help="How far back: 24h, 7d, 30d ...")] = "7d",
    output_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    chart: Annotated[Path | None, typer.Option(help="Also write a PNG chart here.")] = None,
    gateway: Annotated[
        str | None, typer.Option(help="A running gateway's URL, for its drift scores.")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Ledger URL (sqlite:///... | postgresql://...).")
    ] = None,
    fleet: Annotated[Path | None, typer.Option(help="Fleet file naming the ledger URL.")] = None,
) -> None:
    """Confidence, ratings, regenerations, abandoned streams and drift per model version."""
    try:
        window_s = parse_duration(since)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from error
    drift = _drift(gateway)
    store = _open_store(_ledger_url(db, fleet))
    try:
        start = time.time() - window_s
        rows = build_quality_report(store.records(since=start), store.feedback(start), drift)
    finally:
        store.close()
    if output_json:
        typer.echo(json.dumps(to_json(rows), indent=2))
    else:
        Console(width=180).print(_table(rows, since))
    if chart is not None:
        write_quality_chart(rows, chart)
        typer.echo(f"wrote {chart}", err=True)
