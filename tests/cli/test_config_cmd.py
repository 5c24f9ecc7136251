"""`inferplane config check` against the host's cores: CPU replicas that need more cores than
the host has are refused with the pools and the numbers, unless the fleet shares."""

from pathlib import Path

from typer.testing import CliRunner

from inferplane.cli.app import app

runner = CliRunner()
POOLS = """
models: {chat: {source: demo:tiny}, embed: {source: demo:tiny, task: embed}}
pools:
  chat: {model: chat, replicas: {min: 2, max: 4}, resources: {cpu: 2}}
  embed: {model: embed, replicas: {min: 1, max: 1}}
"""


def check(tmp_path: Path, cpu: str) -> tuple[int, str]:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"cpu: {cpu}\n{POOLS}")
    result = runner.invoke(app, ["config", "check", str(fleet)])
    return result.exit_code, " ".join(result.output.split())


def test_oversubscribed_cpu_replicas_are_refused_with_the_numbers(tmp_path: Path) -> None:
    code, output = check(tmp_path, "{cores: 4}")
    assert code == 1
    # 4 cores, one kept for the platform; embed gets what chat's maximum leaves: at least 1
    assert "cpu: CPU replicas need 5 cores at their minimum (chat 2 x 2, embed 1 x 1)" in output
    assert "the host has 3 for replicas (declared: 4 cores, 1 kept for the platform)" in output
    assert "set `cpu: {share: true}`" in output


def test_a_fleet_that_shares_or_fits_passes_and_says_what_each_replica_gets(
    tmp_path: Path,
) -> None:
    code, output = check(tmp_path, "{cores: 4, share: true}")
    assert code == 0, output
    assert "they share cores, threads divided (cpu.share)" in output
    code, output = check(tmp_path, "{cores: 16, numa_nodes: 2}")
    assert code == 0, output
    assert "declared: 16 cores in 2 NUMA nodes, 1 kept for the platform" in output
    assert "per CPU replica: chat 2, embed 7" in output
    code, output = check(tmp_path, "{cores: 2, reserve: 2}")
    assert code == 1 and "cpu.reserve (2) leaves no core" in output
