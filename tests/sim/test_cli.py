"""The `inferplane sim` command (src/inferplane/cli/sim_cmd.py)."""

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from inferplane.cli.sim_cmd import app

SLICE = Path(__file__).parent / "data" / "azure_conv_1000.csv"
FLEET = """
models: {chat: {source: llama-3-8b, max_model_len: 8192}}
pools: {chat: {model: chat, replicas: {min: 1, max: 4}, resources: {gpu: H100}}}
"""
runner = CliRunner()


def _fleet(tmp_path: Path) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    return str(path)


def test_one_row_per_policy(tmp_path: Path) -> None:
    args = [_fleet(tmp_path), "--trace", str(SLICE), "--pool", "chat", "--limit", "200",
            "--replicas", "2", "--policy", "round_robin,least_outstanding"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "round_robin" in result.output and "least_outstanding" in result.output
    assert "200 requests" in result.output and "H100-SXM" in result.output


def test_json_for_one_policy_and_for_several(tmp_path: Path) -> None:
    base = [_fleet(tmp_path), "--trace", str(SLICE), "--pool", "chat", "--limit", "50", "--json"]
    one: dict[str, Any] = json.loads(runner.invoke(app, base).output)
    assert one["policy"] == "least_outstanding" and one["finished"] == 50
    several = json.loads(runner.invoke(app, [*base, "--policy", "round_robin,warmth"]).output)
    assert [r["policy"] for r in several] == ["round_robin", "warmth"]


def test_refusals_exit_1_and_bad_input_exits_2(tmp_path: Path) -> None:
    short = tmp_path / "short.yaml"
    short.write_text(FLEET.replace("8192", "512"))  # the trace has longer prompts
    args = [str(short), "--trace", str(SLICE), "--pool", "chat", "--limit", "20"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1, refused.output
    assert "400 context_length_exceeded" in refused.output
    fleet = _fleet(tmp_path)
    bad = runner.invoke(app, [fleet, "--trace", str(SLICE), "--pool", "nope"])
    assert bad.exit_code == 2 and "unknown pool" in bad.output
    missing = runner.invoke(app, [fleet, "--trace", str(tmp_path / "none.csv"), "--pool", "chat"])
    assert missing.exit_code == 2


MOONCAKE = Path(__file__).parent / "data" / "mooncake_300.jsonl"
LONG = """
models: {chat: {source: llama-3.1-8b, max_model_len: 131072}}
pools:
  chat: {model: chat, replicas: {min: 2, max: 2}, resources: {gpu: H100}}
  canary: {model: chat, replicas: {min: 1, max: 1}, resources: {gpu: H100}}
routes:
  - {name: try-it, canary: {pool: canary, percent: 25}}
  - {name: default, pool: chat}
"""


def test_a_mooncake_trace_routed_by_the_fleets_rules(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(LONG)
    args = [str(path), "--trace", str(MOONCAKE), "--limit", "60", "--speedup", "2",
            "--policy", "prefix_affinity"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    assert "60 requests for chat, by the fleet's rules" in result.output
    assert "canary:canary(25%)" in result.output and "cache hit" in result.output
    data: list[dict[str, Any]] = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert set(data[0]["pools"]) == {"chat", "canary"}
    assert data[0]["pools"]["chat"]["prefix_cache_hit_rate"] >= 0


def test_a_bad_trace_line_exits_2_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "trace.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n'
                   '{"timestamp": 1, "input_length": 5}\n')  # fmt: skip
    result = runner.invoke(app, [_fleet(tmp_path), "--trace", str(bad), "--pool", "chat"])
    assert result.exit_code == 2 and "line 2" in result.output
