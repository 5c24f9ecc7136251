"""`inferplane up`: a bad fleet file fails early with advice (the running fleet is e2e)."""

from pathlib import Path

import typer
from typer.testing import CliRunner

from inferplane.cli.up_cmd import up


def test_a_bad_fleet_file_exits_2_with_the_reason(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("pools: {chat: {model: missing}}\n")
    app = typer.Typer()
    app.command()(up)
    result = CliRunner().invoke(app, [str(fleet), "--log-dir", str(tmp_path / "logs")])
    assert result.exit_code == 2
    assert "missing" in result.output
