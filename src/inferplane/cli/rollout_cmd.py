"""`inferplane rollout`: plan, start, watch and abort progressive rollouts.

`plan` needs no controller: it validates the steps and prints the schedule. `start`, `status`
and `abort` call the /admin/rollouts endpoint of a running `inferplane up` (--url), with an
admin key from --api-key or INFERPLANE_API_KEY when the fleet has a keys file.

Besides errors and latency, a plan may gate the canary on quality against the baseline (each
off unless given): --logprob-drop (nats of mean token logprob the canary may lose),
--feedback-margin (negative feedback events per request it may add) and --drift-margin (input
drift score it may add), the same gates /admin/rollouts takes.
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
LOGPROB_OPTION = typer.Option(
    min=0.0, help="Roll back when the canary's mean token logprob is this far (nats) below."
)
FEEDBACK_OPTION = typer.Option(
    min=0.0, help="Roll back when its negative feedback per request is this much higher."
)
DRIFT_OPTION = typer.Option(min=0.0, help="Roll back when its input drift score is this higher.")


@app.callback()
def rollout() -> None:
    """Progressive rollouts of a new model to a pool."""


def parse_steps(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"--steps must be percentages like 5,25,50,100 (got {text!r})") from error


@app.command("plan")
def plan_command(  # noqa: PLR0917 (a typer command: one parameter per flag)
    pool: Annotated[str, typer.Argument(help="The pool to roll out to.")],
    to: Annotated[str, typer.Option("--to", help="The model to roll out.")],
    steps: Annotated[str, typer.Option(help="Canary percentages, ending at 100.")] = "5,25,50,100",
    hold: Annotated[str, typer.Option(help="Hold per step: 30s, 2m, ...")] = "2m",
    min_requests: Annotated[int, typer.Option(help="Canary requests before judging.")] = 50,
    logprob_drop: Annotated[float | None, LOGPROB_OPTION] = None,
    feedback_margin: Annotated[float | None, FEEDBACK_OPTION] = None,
    drift_margin: Annotated[float | None, DRIFT_OPTION] = None,
) -> None:
    """Print a rollout's steps, holds and gates without starting it."""
    try:
        gates = Gates(
            min_requests=min_requests,
            logprob_drop=logprob_drop,
            feedback_margin=feedback_margin,
            drift_margin=drift_margin,
        )
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
        *_quality_gates(gates),
    ]


def _quality_gates(gates: Gates) -> list[str]:
    lines = []
    if gates.logprob_drop is not None:
        lines.append(f"rollback when the canary's mean token logprob is more than "
                     f"{gates.logprob_drop:g} below the baseline's")  # fmt: skip
    if gates.feedback_margin is not None:
        lines.append(f"rollback when the canary's negative feedback per request exceeds the "
                     f"baseline's by more than {gates.feedback_margin:g}")  # fmt: skip
    if gates.drift_margin is not None:
        lines.append(f"rollback when the canary's input drift score exceeds the baseline's by "
                     f"more than {gates.drift_margin:g}")  # fmt: skip
    if not lines:
        lines.append("no quality gate (--logprob-drop, --feedback-margin, --drift-margin)")
    return lines


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
    logprob_drop: Annotated[float | None, LOGPROB_OPTION] = None,
    feedback_margin: Annotated[float | None, FEEDBACK_OPTION] = None,
    drift_margin: Annotated[float | None, DRIFT_OPTION] = None,
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
    quality = {"logprob_drop": logprob_drop, "feedback_margin": feedback_margin,
               "drift_margin": drift_margin}  # fmt: skip
    body |= {name: value for name, value in quality.items() if value is not None}
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
