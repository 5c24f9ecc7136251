"""`inferplane cost ...`: cost reports from the ledger, and the GPU price catalog."""

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferplane.config import ConfigError, load_fleet
from inferplane.config.durations import parse_duration
from inferplane.ledger.chart import write_chart
from inferplane.ledger.price_list import GPU_NAMES, PROVIDERS
from inferplane.ledger.pricing import PriceCatalog, catalog_for, default_catalog
from inferplane.ledger.reports import Report, ReportRow, build_report, to_csv, to_json
from inferplane.ledger.store import DEFAULT_URL, UsageStore

app = typer.Typer(help="Cost reports and GPU prices.", no_args_is_help=True)


class By(StrEnum):
    team = "team"
    key = "key"
    model = "model"
    pool = "pool"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _ledger_url(db: str | None, fleet: Path | None) -> str:
    if db:
        return db
    if fleet is None:
        return DEFAULT_URL
    try:
        return load_fleet(fleet).ledger.url
    except ConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--fleet") from error


def _open_store(url: str) -> UsageStore:
    store = UsageStore(url)
    if store.is_sqlite and store.url.database and not Path(store.url.database).exists():
        typer.echo(f"error: no ledger at {store.url.database} (give --db or --fleet)", err=True)
        raise typer.Exit(1)
    return store.open()


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _cells(row: ReportRow) -> list[str]:
    utilisation = "-" if row.utilisation is None else f"{row.utilisation:.1%}"
    return [
        row.group,
        _money(row.spend_usd),
        f"{row.tokens:,}",
        f"{row.requests:,}",
        _money(row.usd_per_1m_tokens),
        _money(row.cost_per_request_p50_usd),
        _money(row.cost_per_request_p95_usd),
        utilisation,
        _money(row.idle_waste_usd),
    ]


def _table(report: Report, title: str) -> Table:
    table = Table(title=title)
    for header in ("group", "spend", "tokens", "requests", "$/1M tok", "p50 $/req", "p95 $/req"):
        table.add_column(header, justify="left" if header == "group" else "right")
    table.add_column("utilisation", justify="right")
    table.add_column("idle waste", justify="right")
    for row in report.rows:
        table.add_row(*_cells(row))
    table.add_row(*_cells(report.total), style="bold")
    return table


@app.command("report")
def report(
    *,
    by: Annotated[By, typer.Option(help="Group by team, key, model or pool.")] = By.team,
    since: Annotated[str, typer.Option(help="How far back: 24h, 7d, 30d ...")] = "7d",
    output: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    chart: Annotated[Path | None, typer.Option(help="Also write a PNG bar chart here.")] = None,
    db: Annotated[
        str | None, typer.Option(help="Ledger URL (sqlite:///... | postgresql://...).")
    ] = None,
    fleet: Annotated[Path | None, typer.Option(help="Fleet file naming the ledger URL.")] = None,
) -> None:
    """Spend, tokens, requests, unit costs, utilisation and idle waste from the ledger."""
    try:
        window_s = parse_duration(since)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from error
    store = _open_store(_ledger_url(db, fleet))
    try:
        result = build_report(store.records(since=time.time() - window_s), by.value)
    finally:
        store.close()
    if output is Format.json:
        typer.echo(to_json(result))
    elif output is Format.csv:
        typer.echo(to_csv(result), nl=False)
    else:
        Console(width=160).print(_table(result, f"Cost by {by.value}, last {since}"))
    if chart is not None:
        write_chart(result, chart)
        typer.echo(f"wrote {chart}", err=True)


def _price_table(catalog: PriceCatalog, capacity: str) -> Table:
    table = Table(title=f"$ per GPU-hour, {capacity}")
    table.add_column("GPU")
    for provider in PROVIDERS:
        table.add_column(provider, justify="right")
    for gpu in GPU_NAMES:
        cells = [catalog.hourly_usd(gpu, provider, capacity) for provider in PROVIDERS]
        table.add_row(gpu, *("-" if usd is None else f"{usd:g}" for usd in cells))
    return table


@app.command("prices")
def prices(
    capacity: Annotated[str, typer.Option(help="on-demand, spot or reserved.")] = "on-demand",
    fleet: Annotated[Path | None, typer.Option(help="Apply this fleet file's overrides.")] = None,
) -> None:
    """The GPU price catalog; '-' where a provider does not offer a GPU."""
    catalog = default_catalog()
    if fleet is not None:
        catalog = catalog_for(load_fleet(fleet).pricing)
    try:
        table = _price_table(catalog, capacity)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--capacity") from error
    Console(width=120).print(table)
    dates = sorted({price.taken.isoformat() for price in catalog.prices()})
    typer.echo(f"prices taken: {', '.join(dates)}")
