import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from inferplane.telemetry.cli import app

runner = CliRunner()


def test_print_the_dashboard_and_the_rules() -> None:
    dashboard = runner.invoke(app, ["dashboard"])
    assert dashboard.exit_code == 0
    assert json.loads(dashboard.stdout)["uid"] == "inferplane-fleet"
    rules = runner.invoke(app, ["alerts"])
    assert rules.exit_code == 0
    assert yaml.safe_load(rules.stdout)["groups"]


def test_install_writes_both_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = runner.invoke(app, ["install", str(tmp_path)])
    assert first.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.yaml", "grafana-inferplane.json"]
    again = runner.invoke(app, ["install", str(tmp_path)])
    assert again.exit_code == 2
    assert "exists" in again.output
    assert runner.invoke(app, ["install", str(tmp_path), "--force"]).exit_code == 0
