import csv
import io
import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from inferplane.cli import cost_cmd
from inferplane.ledger.store import UsageStore
from tests.ledger.synthetic import history

runner = CliRunner()


def _app() -> typer.Typer:
    # Mounted as the lead's app does, so the command line reads `cost report ...`.
    root = typer.Typer()
    root.add_typer(cost_cmd.app, name="cost")
    return root


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    now = time.time()
    with UsageStore(url) as store:
        store.write(history(now - 3 * 3600, now - 600))
        store.write(history(now - 30 * 86_400, now - 29 * 86_400, seed=2))  # outside 7d
    return url


def test_table(ledger_url: str) -> None:
    result = runner.invoke(_app(), ["cost", "report", "--by", "pool", "--db", ledger_url])
    assert result.exit_code == 0, result.output
    for text in ("Cost by pool, last 7d", "chat-primary", "embeddings", "(total)", "utilisation"):
        assert text in result.output


def test_json_respects_since(ledger_url: str) -> None:
    args = ["cost", "report", "--by", "team", "--format", "json", "--db", ledger_url]
    recent = json.loads(runner.invoke(_app(), args).output)
    everything = json.loads(runner.invoke(_app(), [*args, "--since", "60d"]).output)
    assert {row["group"] for row in recent["rows"]} == {"ml", "web", "(idle)"}
    assert everything["total"]["requests"] > recent["total"]["requests"] > 0
    # the recent window is three replicas for 2h50m: 2 x H100 at 2.69 and 1 x L4 at 0.43
    assert recent["total"]["spend_usd"] == pytest.approx((2 * 2.69 + 0.43) * (170 / 60), abs=0.01)


def test_csv_and_chart(ledger_url: str, tmp_path: Path) -> None:
    chart = tmp_path / "cost.png"
    args = ["cost", "report", "--by", "model", "--format", "csv", "--chart", str(chart)]
    result = runner.invoke(_app(), [*args, "--db", ledger_url])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["group"] for row in rows] == ["chat-small", "minilm", "(total)"]
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_ledger_url_from_the_fleet_file(ledger_url: str, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"ledger: {{url: '{ledger_url}'}}\n")
    result = runner.invoke(_app(), ["cost", "report", "--fleet", str(fleet), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["total"]["requests"] > 0


def test_missing_ledger_and_bad_since(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    result = runner.invoke(_app(), ["cost", "report", "--db", missing])
    assert result.exit_code == 1 and "no ledger at" in result.output
    assert not (tmp_path / "none.db").exists()
    result = runner.invoke(_app(), ["cost", "report", "--db", missing, "--since", "a week"])
    assert result.exit_code == 2 and "like 300ms, 30s" in result.output


def test_prices(tmp_path: Path) -> None:
    result = runner.invoke(_app(), ["cost", "prices"])
    assert result.exit_code == 0, result.output
    assert "H100-SXM" in result.output and "2.69" in result.output
    assert "prices taken: 2026-11-01" in result.output
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("pricing: {provider: runpod, gpu_hourly_usd: {H100: 2.49}}\n")
    result = runner.invoke(_app(), ["cost", "prices", "--fleet", str(fleet), "--capacity", "spot"])
    assert result.exit_code == 0, result.output
    assert "spot" in result.output
