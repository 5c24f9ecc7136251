"""`inferplane quality report` over a real SQLite ledger: confidence and feedback per model
version (feedback from another key ignored), drift read from a gateway's metrics text, as a
table, JSON and a PNG chart."""

import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from inferplane.cli import quality_cmd
from inferplane.ledger.feedback import FeedbackRecord
from inferplane.ledger.quality_report import drift_from_metrics
from inferplane.ledger.store import UsageStore
from inferplane.ledger.usage import UsageRecord

runner = CliRunner()
METRICS = (
    "# HELP inference_input_drift_score Drift.\n# TYPE inference_input_drift_score gauge\n"
    'inference_input_drift_score{model="chat",model_version="v2",signal="script"} 1.5\n'
)


def _app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(quality_cmd.app, name="quality")
    return root


def _usage(request_id: str, version: str, logprob: float, now: float) -> UsageRecord:
    return UsageRecord(now - 60, request_id, "chat", "main", "main-0", "cpu", 0.0, 0,
                       key="alice", model_version=version, mean_logprob=logprob,
                       low_confidence_share=0.5 if logprob < -1 else 0.0)  # fmt: skip


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('quality') / 'ledger.db'}"
    now = time.time()
    with UsageStore(url) as store:
        store.write([_usage("a1", "v1", -0.4, now), _usage("a2", "v1", -0.6, now),
                     _usage("b1", "v2", -2.0, now), _usage("b2", "v2", -1.0, now)])  # fmt: skip
        store.write_feedback([
            FeedbackRecord("f1", now, "a1", "rating", 5.0, "alice"),
            FeedbackRecord("f2", now, "b1", "rating", 1.0, "alice"),
            FeedbackRecord("f3", now, "b1", "regeneration", 1.0, "alice"),
            FeedbackRecord("f4", now, "b2", "thumbs", 0.0, "mallory"),  # not alice's to rate
        ])  # fmt: skip
    return url


def test_json_per_model_version(ledger_url: str) -> None:
    result = runner.invoke(_app(), ["quality", "report", "--db", ledger_url, "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["model_version"]: row for row in json.loads(result.output)["rows"]}
    assert rows["v1"]["mean_logprob"] == pytest.approx(-0.5)
    assert rows["v2"]["mean_logprob"] == pytest.approx(-1.5)
    assert rows["v2"]["low_confidence_share"] == pytest.approx(0.25)
    assert (rows["v1"]["mean_rating"], rows["v2"]["mean_rating"]) == (5.0, 1.0)
    assert rows["v2"]["regenerations"] == 1 and rows["v2"]["thumbs_down"] == 0
    assert (rows["v1"]["negative_rate"], rows["v2"]["negative_rate"]) == (0.0, 1.0)


def test_table_and_chart(ledger_url: str, tmp_path: Path) -> None:
    chart = tmp_path / "quality.png"
    args = ["quality", "report", "--db", ledger_url, "--chart", str(chart)]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "Model quality" in result.output and "-1.500" in result.output
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_drift_from_a_gateways_metrics() -> None:
    assert drift_from_metrics(METRICS) == {("chat", "v2"): {"script": 1.5}}
