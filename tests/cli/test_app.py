import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from inferplane import __version__
from inferplane.cli.app import app

EXAMPLES = Path(__file__).parents[2] / "examples"
runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"inferplane {__version__}"


def test_config_check_ok() -> None:
    result = runner.invoke(app, ["config", "check", str(EXAMPLES / "demo.yaml")])
    assert result.exit_code == 0, result.output
    assert "ok (2 models, 2 pools, 2 routes)" in result.output


def test_config_check_reports_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models: {m: {source: demo:tiny}}\npools: {c: {model: m, replicas: {min: 2, max: 1}}}"
    )
    result = runner.invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "pools.c.replicas: max (1) must be >= min (2)" in result.output


def test_models_demo_writes_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "demo", str(tmp_path / "m"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_models_demo_rejects_unknown_preset(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "demo", str(tmp_path), "--preset", "huge"])
    assert result.exit_code == 2


def test_models_resolve_error() -> None:
    result = runner.invoke(app, ["models", "resolve", "/not/a/model"])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_installed_entry_point_runs() -> None:
    exe = Path(sys.executable).with_name("inferplane")
    out = subprocess.run(
        [str(exe), "--version"], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and __version__ in out.stdout
