"""`inferplane deploy kubernetes`: a chart directory, manifests with --set, clear errors."""

from pathlib import Path

import yaml
from typer.testing import CliRunner

from inferplane.cli.app import app

DEMO = str(Path(__file__).parents[2] / "examples" / "demo.yaml")


def test_chart(tmp_path: Path) -> None:
    out = tmp_path / "chart"
    result = CliRunner().invoke(app, ["deploy", "kubernetes", DEMO, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"Chart.yaml", "values.yaml", "values.schema.json",
                                               "templates", "files"}  # fmt: skip
    assert "helm install" in result.output


def test_manifests_with_set(tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = ["deploy", "kubernetes", DEMO, "--out", str(out), "--format", "manifests",
            "--set", "image.tag=dev", "--namespace", "serving"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    deployment = next(yaml.safe_load_all((out / "pool-chat-primary.yaml").read_text()))
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "inferplane:dev"
    assert "kubectl apply -n serving" in result.output


def test_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_set = ["deploy", "kubernetes", DEMO, "--out", str(tmp_path / "a"), "--format",
               "manifests", "--set", "image.pullPolicy=Sometimes"]  # fmt: skip
    result = runner.invoke(app, bad_set)
    assert result.exit_code == 2 and "pullPolicy" in result.output
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    result = runner.invoke(app, ["deploy", "kubernetes", DEMO, "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "not empty" in result.output
    result = runner.invoke(app, ["deploy", "kubernetes", "missing.yaml", "--out", str(tmp_path)])
    assert result.exit_code == 2
