import json
import shlex
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from inferplane.cli.plan_cmd import app
from inferplane.sources.demo import PRESETS, hf_config, parameter_count

EXAMPLE = Path(__file__).parents[2] / "examples" / "plan-70b.sh"
runner = CliRunner()


def _example_args() -> list[str]:
    """The arguments examples/plan-70b.sh passes to `inferplane plan`."""
    text = EXAMPLE.read_text().split("exec inferplane plan", 1)[1].split('"$@"')[0]
    return shlex.split(text.replace("\\\n", " "))


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def test_the_70b_example_prints_options_and_assumptions() -> None:
    result = runner.invoke(app, _example_args())
    assert result.exit_code == 0, result.output
    assert "llama-3-70b: 70.55B parameters" in result.output
    assert "500,000 requests/day" in result.output
    assert "assumptions:" in result.output
    for needle in ("framework overhead", "efficiency (assumed unless measured)", "prices: runpod"):
        assert needle in result.output


def test_the_70b_example_as_json() -> None:
    data = _json(_example_args())
    options = data["options"]
    assert options
    best = options[0]
    assert best["meets_target"] and best["p95_latency_s"] <= 3.0
    assert best["gpus_per_replica"] >= 2  # 70B in bf16 needs tensor parallelism
    assert best["cost_per_million_tokens"] > 0 and best["price_per_hour"] > 0
    assert data["weights_bytes"] > 140e9 and data["kv_cache_bytes"] == 8 * 1_342_177_280


def test_llama_2_7b_kv_cache_through_the_cli() -> None:
    data = _json(["--model", "llama-2-7b", "--dtype", "fp16", "--context", "4096"])
    assert data["kv_cache_bytes"] == 2_147_483_648
    assert 13e9 < data["weights_bytes"] < 14e9  # 6.74B parameters: "about 14 GB"


def test_config_json_directory_and_demo_source(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(hf_config(PRESETS["tiny"])))
    from_dir = _json(["--model", str(tmp_path), "--dtype", "fp32"])
    from_demo = _json(["--model", "demo:tiny", "--dtype", "fp32"])
    assert from_dir["weights_bytes"] == from_demo["weights_bytes"]
    assert from_demo["model"]["parameters"] == parameter_count(PRESETS["tiny"])
    assert not (tmp_path / "model.safetensors").exists()


def test_impossible_ask_exits_1_with_the_smallest_fit() -> None:
    args = ["--model", "llama-3.1-405b", "--dtype", "fp32", "--context", "131072"]
    result = runner.invoke(app, [*args, "--gpu", "T4", "--max-gpus", "1"])
    assert result.exit_code == 1
    assert "does not fit" in result.output
    assert "smallest option that fits: 8 x H200 at bf16" in " ".join(result.output.split())


def test_measured_efficiency_from_bench_results(tmp_path: Path) -> None:
    record = {"roofline": [{"gpu": "H100-SXM", "bandwidth_fraction": 0.8}]}
    (tmp_path / "decode.json").write_text(json.dumps(record))
    (tmp_path / "broken.json").write_text("{")
    args = ["--model", "llama-3-8b", "--gpu", "H100-SXM", "--bench-results", str(tmp_path)]
    data = _json(args)
    assert data["options"][0]["efficiency"] == "measured"
    assert any("measured: decode.json (n=1)" in line for line in data["assumptions"])


def test_chart_is_written(tmp_path: Path) -> None:
    chart = tmp_path / "plan.png"
    args = ["--model", "llama-3-8b", "--requests-per-s", "5", "--p95-latency", "20s"]
    result = runner.invoke(app, [*args, "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_a_usage_error() -> None:
    result = runner.invoke(app, ["--model", "gpt-9"])
    assert result.exit_code == 2 and "unknown model 'gpt-9'" in result.output
    result = runner.invoke(app, ["--model", "llama-3-8b", "--dtype", "int3"])
    assert result.exit_code == 2 and "unknown dtype" in result.output
    both = ["--requests-per-day", "1", "--requests-per-s", "1"]
    result = runner.invoke(app, ["--model", "llama-3-8b", *both])
    assert result.exit_code == 2 and "not both" in result.output
