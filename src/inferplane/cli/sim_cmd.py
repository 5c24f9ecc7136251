"""`inferplane sim FLEET.yaml --trace PATH --pool NAME`: replay a trace through a pool's real
scheduler, balancer and autoscaler in simulated time, and print what users and the bill see.

`--policy a,b,c` runs the same trace once per balancing policy and prints one row each. The
GPU defaults to the pool's `resources.gpu`. Exit status: 0 when every request finished, 1
when some were refused (the table says why), 2 for bad input.
"""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferplane.config.errors import ConfigError
from inferplane.config.loader import load_fleet
from inferplane.sim.report import SimReport
from inferplane.sim.run import DEFAULT_COLD_START_S, SimOptions, simulate
from inferplane.sim.trace import load_azure_trace

app = typer.Typer(help="Replay a request trace through a pool in simulated time.")

_COLUMNS = (
    "policy", "done", "refused", "held", "TTFT p50", "p95", "p99", "E2E p50", "p95 ",
    "p99 ", "out tok/s", "replicas", "GPU-h", "cost", "$/1M out",
)  # fmt: skip
_LEGEND = (
    "TTFT and E2E in seconds from arrival at the gateway; held: waited for a replica to come "
    "up; replicas: max (time-weighted mean); GPU-h and cost include cold starts and the "
    "scale-down tail"
)


def run_sim(  # noqa: PLR0917
    fleet_path: Path, trace: Path, pool: str, gpu: str | None, policies: list[str | None],
    speedup: float, limit: int | None, options: SimOptions,
) -> list[SimReport]:  # fmt: skip
    fleet = load_fleet(fleet_path)
    requests = load_azure_trace(trace, speedup, limit)
    return [simulate(fleet, pool, requests, gpu, policy, options=options) for policy in policies]


def _policies(text: str | None) -> list[str | None]:
    if text is None:
        return [None]
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("--policy needs at least one name, e.g. least_outstanding")
    return list(names)


@app.command()
def sim(  # noqa: PLR0917
    fleet: Annotated[Path, typer.Argument(help="The fleet file.")],
    trace: Annotated[Path, typer.Option(help="Azure LLM trace CSV.")],
    pool: Annotated[str, typer.Option(help="The pool to replay the trace through.")],
    gpu: Annotated[str | None, typer.Option(help="GPU (default: the pool's).")] = None,
    policy: Annotated[str | None, typer.Option(help="Policy, or a,b,c to compare.")] = None,
    speedup: Annotated[float, typer.Option(help="Replay this many times faster.")] = 1.0,
    limit: Annotated[int | None, typer.Option(help="Only the first N requests.")] = None,
    replicas: Annotated[int | None, typer.Option(help="Fixed pool size, no autoscaling.")] = None,
    cold_start: Annotated[float, typer.Option(help="Seconds until a new replica is ready.")] = (
        DEFAULT_COLD_START_S
    ),
    shape: Annotated[str | None, typer.Option(help="Planner preset for the model.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for randomised policies.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Replay a trace through a pool's real scheduler, balancer and autoscaler."""
    options = SimOptions(seed=seed, replicas=replicas, cold_start_s=cold_start, shape=shape)
    try:
        reports = run_sim(fleet, trace, pool, gpu, _policies(policy), speedup, limit, options)
    except (ConfigError, ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        data = [report.to_dict() for report in reports]
        typer.echo(json.dumps(data[0] if policy is None else data, indent=2))
    else:
        _print(reports)
    if any(report.rejected for report in reports):
        raise typer.Exit(1)


def _print(reports: list[SimReport]) -> None:
    console = Console(width=160)
    first = reports[0]
    settings = first.settings
    console.print(
        f"{settings['trace_requests']:,} requests over {settings['trace_span_s']:,.0f} s -> pool "
        f"{first.pool} ({first.model} {settings['dtype']} on {settings['tensor_parallel']} x "
        f"{first.gpu}, replicas {settings['min']}..{settings['max']}, "
        f"{settings['kv_blocks']:,} KV blocks each)",
        highlight=False,
    )
    console.print(_table(reports))
    for report in reports:
        for reason, count in report.rejected_by_reason.items():
            console.print(f"[bold red]refused[/] ({report.policy}): {count} x {reason}")


def _table(reports: list[SimReport]) -> Table:
    table = Table(title="simulated", title_justify="left", caption=_LEGEND)
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    for report in reports:
        table.add_row(*_row(report))
    return table


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _row(r: SimReport) -> list[str]:
    return [
        r.policy, f"{r.finished:,}", f"{r.rejected:,}", f"{r.held:,}",
        f"{r.ttft_s.p50:.3f}", f"{r.ttft_s.p95:.3f}", f"{r.ttft_s.p99:.3f}",
        f"{r.latency_s.p50:.2f}", f"{r.latency_s.p95:.2f}", f"{r.latency_s.p99:.2f}",
        f"{r.output_tokens_per_s:,.1f}", f"{r.replicas_max} ({r.replicas_mean:.2f})",
        f"{r.gpu_seconds / 3600:,.3f}", _money(r.cost_usd), _money(r.usd_per_1m_output_tokens),
    ]  # fmt: skip
