"""`inferplane sim FLEET.yaml --trace PATH [--pool NAME | --model NAME]`: replay a trace through
a fleet's real scheduler, balancer and autoscaler in simulated time, and print what users and
the bill see.

The trace is an Azure LLM trace CSV or a Mooncake JSONL trace (with prompt block ids, so
shared prefixes reach the prefix cache), told apart by content. `--pool` sends every request to
one pool; without it each request is routed by the fleet's rules as a request for `--model`
(the fleet's only model when it has one), and every pool that gets traffic is simulated.
`--policy a,b,c` runs the same trace once per balancing policy and prints one row each. The GPU
defaults to each pool's `resources.gpu`. `--crash-mtbf` and `--spot-mtbi` inject random crashes
and spot interruptions; `--workers N` simulates the pools (once routed they share nothing) in N
processes. Exit status: 0 when every request finished, 1 when some were refused
(the table says why), 2 for bad input.
"""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferplane.config.errors import ConfigError
from inferplane.config.loader import load_fleet
from inferplane.config.schema import FleetConfig
from inferplane.sim.faults import SPOT_NOTICE_S, Faults
from inferplane.sim.load import load_trace
from inferplane.sim.report import FleetReport, SimReport
from inferplane.sim.run import DEFAULT_COLD_START_S, SimOptions, simulate, simulate_fleet
from inferplane.sim.trace import Trace

app = typer.Typer(help="Replay a request trace through a fleet in simulated time.")

_COLUMNS = (
    "policy", "done", "refused", "held", "TTFT p50", "p95", "p99", "E2E p50", "p95 ",
    "p99 ", "out tok/s", "cache hit", "replicas", "GPU-h", "cost", "$/1M out",
)  # fmt: skip
_LEGEND = (
    "TTFT and E2E in seconds from arrival at the gateway; held: waited for a replica to come "
    "up; cache hit: prompt tokens found in the prefix cache; replicas: max (time-weighted "
    "mean); GPU-h and cost include cold starts and the scale-down tail"
)


def run_sim(  # noqa: PLR0917
    fleet_path: Path, trace: Path, pool: str, gpu: str | None, policies: list[str | None],
    speedup: float, limit: int | None, options: SimOptions,
) -> list[SimReport]:  # fmt: skip
    fleet = load_fleet(fleet_path)
    requests = load_trace(trace, speedup, limit)
    return [simulate(fleet, pool, requests, gpu, policy, options=options) for policy in policies]


def run_fleet_sim(  # noqa: PLR0917
    fleet: FleetConfig, requests: Trace, model: str | None, gpu: str | None,
    policies: list[str | None], options: SimOptions, workers: int = 1,
) -> list[FleetReport]:  # fmt: skip
    name = model or _only_model(fleet)
    return [simulate_fleet(fleet, name, requests, gpu, p, options=options, workers=workers)
            for p in policies]  # fmt: skip


def _only_model(fleet: FleetConfig) -> str:
    if len(fleet.models) == 1:
        return next(iter(fleet.models))
    known = ", ".join(fleet.models) or "none"
    raise ValueError(f"name the model the trace asks for with --model ({known}), or a --pool")


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
    trace: Annotated[Path, typer.Option(help="Azure trace CSV or Mooncake JSONL.")],
    pool: Annotated[str | None, typer.Option(help="Send every request to this pool.")] = None,
    model: Annotated[str | None, typer.Option(help="Route as requests for this model.")] = None,
    gpu: Annotated[str | None, typer.Option(help="GPU (default: the pool's).")] = None,
    policy: Annotated[str | None, typer.Option(help="Policy, or a,b,c to compare.")] = None,
    speedup: Annotated[float, typer.Option(help="Replay this many times faster.")] = 1.0,
    limit: Annotated[int | None, typer.Option(help="Only the first N requests.")] = None,
    replicas: Annotated[int | None, typer.Option(help="Fixed pool size, no autoscaling.")] = None,
    cold_start: Annotated[float, typer.Option(help="Seconds until a new replica is ready.")] = (
        DEFAULT_COLD_START_S
    ),
    shape: Annotated[str | None, typer.Option(help="Planner preset for the model.")] = None,
    crash_mtbf: Annotated[float | None, typer.Option(help="Mean s between crashes.")] = None,
    spot_mtbi: Annotated[float | None, typer.Option(help="Mean s between spot reclaims.")] = None,
    spot_notice: Annotated[float, typer.Option(help="Spot notice, s.")] = SPOT_NOTICE_S,
    seed: Annotated[int, typer.Option(help="Seed for randomised policies and faults.")] = 0,
    workers: Annotated[int, typer.Option(help="Processes for pools (routed by rules).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Replay a trace through a fleet's real scheduler, balancer and autoscaler."""
    try:
        faults = Faults(crash_mtbf_s=crash_mtbf, spot_mtbi_s=spot_mtbi, spot_notice_s=spot_notice)
        options = SimOptions(seed=seed, replicas=replicas, cold_start_s=cold_start, shape=shape,
                             faults=faults)  # fmt: skip
        policies = _policies(policy)
        if pool is not None:
            reports = run_sim(fleet, trace, pool, gpu, policies, speedup, limit, options)
        else:
            requests = load_trace(trace, speedup, limit)
            fleets = run_fleet_sim(load_fleet(fleet), requests, model, gpu, policies, options,
                                   workers)  # fmt: skip
    except (ConfigError, ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if pool is None:
        _finish_fleet(fleets, as_json, several=policy is not None)
        return
    if as_json:
        data = [report.to_dict() for report in reports]
        typer.echo(json.dumps(data[0] if policy is None else data, indent=2))
    else:
        _print(reports)
    if any(report.rejected for report in reports):
        raise typer.Exit(1)


def _finish_fleet(reports: list[FleetReport], as_json: bool, several: bool) -> None:
    if as_json:
        data = [report.to_dict() for report in reports]
        typer.echo(json.dumps(data if several else data[0], indent=2))
    else:
        _print_fleet(reports)
    if any(report.rejected for report in reports):
        raise typer.Exit(1)


def _print(reports: list[SimReport]) -> None:
    console = Console(width=170)
    first = reports[0]
    console.print(_heading(first), highlight=False)
    console.print(_table([(report.policy, report) for report in reports]))
    for report in reports:
        for reason, count in report.rejected_by_reason.items():
            console.print(f"[bold red]refused[/] ({report.policy}): {count} x {reason}")


def _heading(report: SimReport) -> str:
    settings = report.settings
    return (
        f"{settings['trace_requests']:,} requests over {settings['trace_span_s']:,.0f} s -> pool "
        f"{report.pool} ({report.model} {settings['dtype']} on {settings['tensor_parallel']} x "
        f"{report.gpu}, replicas {settings['min']}..{settings['max']}, "
        f"{settings['kv_blocks']:,} KV blocks each)"
    )


def _print_fleet(reports: list[FleetReport]) -> None:
    console = Console(width=170)
    first = reports[0]
    routes = ", ".join(f"{reason} {count:,}" for reason, count in first.routes.items())
    console.print(f"{first.requests:,} requests for {first.model}, by the fleet's rules: "
                  f"{routes}", highlight=False)  # fmt: skip
    for report in first.pools.values():
        console.print("  " + _heading(report), highlight=False)
    rows = [(f"{name}: {pool.policy}", pool) for r in reports for name, pool in r.pools.items()]
    console.print(_table(rows))
    for fleet_report in reports:
        for reason, count in fleet_report.rejected_by_reason.items():
            console.print(f"[bold red]refused[/]: {count} x {reason}")


def _table(rows: list[tuple[str, SimReport]]) -> Table:
    table = Table(title="simulated", title_justify="left", caption=_LEGEND)
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    for label, report in rows:
        table.add_row(*_row(label, report))
    return table


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _row(label: str, r: SimReport) -> list[str]:
    return [
        label, f"{r.finished:,}", f"{r.rejected:,}", f"{r.held:,}",
        f"{r.ttft_s.p50:.3f}", f"{r.ttft_s.p95:.3f}", f"{r.ttft_s.p99:.3f}",
        f"{r.latency_s.p50:.2f}", f"{r.latency_s.p95:.2f}", f"{r.latency_s.p99:.2f}",
        f"{r.output_tokens_per_s:,.1f}", f"{r.prefix_cache_hit_rate:.1%}",
        f"{r.replicas_max} ({r.replicas_mean:.2f})", f"{r.gpu_seconds / 3600:,.3f}",
        _money(r.cost_usd), _money(r.usd_per_1m_output_tokens),
    ]  # fmt: skip
