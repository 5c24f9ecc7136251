import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from inferplane.cli.place_cmd import app

EXAMPLE = Path(__file__).parents[2] / "examples" / "placement.yaml"
runner = CliRunner()


def test_the_example_places_every_replica() -> None:
    result = runner.invoke(app, [str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "MIG-GPU-0/2g.20gb/0" in result.output
    assert "utilisation:" in result.output and "mig-configs:" in result.output


def test_json_output() -> None:
    result = runner.invoke(app, [str(EXAMPLE), "--json", "--replicas", "min"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    assert [r["replica"] for r in data["replicas"]] == [
        "chat-0", "chat-tp-0", "small-0", "edge-0", "cpu-demo-0"]  # fmt: skip
    assert data["unplaced"] == [] and 0 < data["utilisation"] < 1
    tp = data["replicas"][1]
    assert tp["cuda_visible_devices"] == "2,3" and tp["devices"] == [2, 3]
    assert data["mig_parted"]["version"] == "v1"


def test_unplaced_replicas_exit_1_with_why(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "inventory: [{gpu: L4}]\n"
        "models: {m: {source: llama-3-8b, max_model_len: 8192}}\n"
        "pools: {p: {model: m, replicas: {min: 1, max: 2}, resources: {gpu: L4}}}\n"
    )
    result = runner.invoke(app, [str(fleet), "--batch", "1"])
    assert result.exit_code == 1
    assert "not placed" in result.output and "p-1" in result.output


def test_bad_input_exits_2(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "models: {m: {source: llama-3-8b}}\npools: {p: {model: m, resources: {gpu: H100}}}\n"
    )
    result = runner.invoke(app, [str(fleet)])
    assert result.exit_code == 2 and "declares no inventory" in result.output
    assert runner.invoke(app, [str(fleet), "--replicas", "some"]).exit_code == 2
    assert runner.invoke(app, [str(tmp_path / "missing.yaml")]).exit_code == 2
