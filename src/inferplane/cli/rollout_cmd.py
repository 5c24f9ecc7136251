"""`inferplane rollout plan`: the steps, holds and gates a rollout would follow.

Starting, watching and aborting a rollout need a running controller; `plan` needs none: it
validates the steps and prints the schedule, so an operator can check it first.
"""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferplane.config.durations import format_duration, parse_duration
from inferplane.control.rollout import Gates, RolloutPlan

app = typer.Typer(help="Progressive rollouts of a new model to a pool.")


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
