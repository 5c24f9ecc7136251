"""`inferplane status`: tables from the controller's JSON; a clear error with no fleet."""

import typer
from rich.console import Console
from typer.testing import CliRunner

from inferplane.cli.status_cmd import render, status
from inferplane.control.actuators.local import free_port

SNAPSHOT = {
    "cost_per_hour_usd": 2.5,
    "pools": [
        {
            "name": "chat", "model": "chat-small", "tier": "hot", "ready": 1, "desired": 2,
            "min": 0, "max": 4, "queue": 3, "requests_per_s": 1.5, "ttft_s": 0.042,
            "cost_per_hour_usd": 2.5,
            "replicas": [
                {"id": "chat-1", "url": "http://127.0.0.1:9", "pid": 1234, "phase": "ready",
                 "in_flight": 2, "waiting": 3, "kv_usage": 0.25, "ttft_s": 0.042},
            ],
        }
    ],
}  # fmt: skip


def test_render_shows_pools_replicas_tiers_queue_rate_ttft_and_cost() -> None:
    console = Console(width=160, record=True)
    console.print(render(SNAPSHOT))
    text = console.export_text()
    for expected in ("chat-small", "hot", "1/2 (0..4)", "1.50", "42 ms", "2.50", "1234", "25%"):
        assert expected in text


def test_no_fleet_is_a_clear_error() -> None:
    app = typer.Typer()
    app.command()(status)
    result = CliRunner().invoke(app, ["--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1
    assert "inferplane up" in result.output


def test_a_replica_waiting_for_a_node_shows_why() -> None:
    waiting = {"id": "chat-2", "url": "", "pid": 0, "phase": "starting", "in_flight": 0,
               "waiting": 0, "kv_usage": 0.0, "ttft_s": None,
               "unplaced": "no node with 1 x H100 free"}  # fmt: skip
    pool = {**SNAPSHOT["pools"][0], "replicas": [waiting]}  # type: ignore[index]
    console = Console(width=200, record=True)
    console.print(render({**SNAPSHOT, "pools": [pool]}))
    assert "starting: no node with 1 x H100 free" in console.export_text()
