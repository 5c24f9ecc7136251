"""`inferplane rollout`: plan, start, watch and abort progressive rollouts.

`plan` needs no controller: it validates the steps and prints the schedule. `start`, `status`
and `abort` call the /admin/rollouts endpoint of a running `inferplane up` (--url), with an
admin key from --api-key or INFERPLANE_API_KEY when the fleet has a keys file.
"""

import os
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from inferplane.config.durations import format_duration, parse_duration
from inferplane.control.rollout import Gates, RolloutPlan

app = typer.Typer(help="Progressive rollouts of a new model to a pool.")
URL_OPTION = typer.Option(help="The gateway of a running `inferplane up`.")
KEY_OPTION = typer.Option(help="An admin key (default: $INFERPLANE_API_KEY).")


@app.callback()
def rollout() -> None:
    """Progressive rollouts of a new model to a pool."""


def parse_steps(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"--steps must be percentages like 5,25,50,100 (got {text!r})") from error


@app.command("plan")
def plan_command(
    pool: Annotated[str, typer.Argument(help="The pool to roll out to.")],
    to: Annotated[str, typer.Option("--to", help="The model to roll out.")],
    steps: Annotated[str, typer.Option(help="Canary percentages, ending at 100.")] = "5,25,50,100",
    hold: Annotated[str, typer.Option(help="Hold per step: 30s, 2m, ...")] = "2m",
    min_requests: Annotated[int, typer.Option(help="Canary requests before judging.")] = 50,
) -> None:
    """Print a rollout's steps, holds and gates without starting it."""
    try:
        gates = Gates(min_requests=min_requests)
        plan = RolloutPlan(pool, to, parse_steps(steps), parse_duration(hold), gates)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    console = Console(width=120)
    console.print(_steps_table(plan))
    for line in describe_gates(plan.gates):
        console.print(f"  - {line}", highlight=False)


def _steps_table(plan: RolloutPlan) -> Table:
    table = Table(title=f"rollout of {plan.to_model} to pool {plan.pool}", title_justify="left")
    for column in ("step", "canary %", "hold", "earliest end"):
        table.add_column(column, justify="right")
    for index, percent in enumerate(plan.steps):
        end = format_duration(plan.hold_s * (index + 1)) if plan.hold_s else "0s"
        table.add_row(str(index + 1), f"{percent:g}", format_duration(plan.hold_s), end)
    return table


def describe_gates(gates: Gates) -> list[str]:
    return [
        f"each step holds until {gates.min_requests} canary requests have been judged",
        f"rollback when the canary error rate exceeds the baseline's by {gates.error_margin:.0%}"
        f" and is above {gates.error_floor:.0%}",
        f"rollback when canary TTFT p95 or TPOT p95 exceeds the baseline's by more than "
        f"{gates.latency_tolerance:.0%}",
    ]


def _call(url: str, api_key: str | None, method: str, path: str, body: Any = None) -> Any:
    key = api_key or os.environ.get("INFERPLANE_API_KEY", "")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(method, f"{url.rstrip('/')}/admin/rollouts{path}",
                                 json=body, headers=headers, timeout=10.0)  # fmt: skip
    except httpx.HTTPError as error:
        typer.echo(f"error: cannot reach {url}: {error} (is `inferplane up` running?)", err=True)
        raise typer.Exit(1) from error
    data = response.json()
    if response.status_code >= 400:
        typer.echo(f"error: {data.get('error', {}).get('message', response.text)}", err=True)
        raise typer.Exit(1)
    return data


def _show(rollouts: list[dict[str, Any]]) -> None:
    table = Table(title="rollouts", title_justify="left")
    for column in ("pool", "to", "status", "step", "canary %", "held", "reason"):
        table.add_column(column)
    for r in rollouts:
        step = f"{r['step']}/{len(r['steps'])}"
        held = f"{r['held_s']:.0f}/{r['hold_s']:.0f} s"
        table.add_row(r["pool"], r["to"], r["status"], step, f"{r['percent']:g}", held, r["reason"])
    Console(width=140).print(table)


@app.command("start")
def start_command(  # noqa: PLR0917 (a typer command: one parameter per flag)
    pool: Annotated[str, typer.Argument(help="The pool to roll out to.")],
    to: Annotated[str, typer.Option("--to", help="The fleet model to roll out.")],
    steps: Annotated[str, typer.Option(help="Canary percentages, ending at 100.")] = "5,25,50,100",
    hold: Annotated[str, typer.Option(help="Hold per step: 30s, 2m, ...")] = "2m",
    min_requests: Annotated[int, typer.Option(help="Canary requests before judging.")] = 50,
    url: Annotated[str, URL_OPTION] = "http://127.0.0.1:8080",
    api_key: Annotated[str | None, KEY_OPTION] = None,
) -> None:
    """Start a rollout on a running fleet; it advances, or rolls back, on its own."""
    try:
        plan = RolloutPlan(pool, to, parse_steps(steps), parse_duration(hold))
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    body = {"pool": pool, "to": to, "steps": list(plan.steps), "hold_s": plan.hold_s,
            "min_requests": min_requests}  # fmt: skip
    _show([_call(url, api_key, "POST", "", body)])


@app.command("status")
def status_command(
    url: Annotated[str, URL_OPTION] = "http://127.0.0.1:8080",
    api_key: Annotated[str | None, KEY_OPTION] = None,
) -> None:
    """Show every rollout of a running fleet."""
    _show(_call(url, api_key, "GET", "")["rollouts"])


@app.command("abort")
def abort_command(
    pool: Annotated[str, typer.Argument(help="The pool whose rollout to roll back.")],
    url: Annotated[str, URL_OPTION] = "http://127.0.0.1:8080",
    api_key: Annotated[str | None, KEY_OPTION] = None,
) -> None:
    """Roll a running rollout back now: canary share 0, canary replicas stopped."""
    _show([_call(url, api_key, "POST", f"/{pool}/abort")])
