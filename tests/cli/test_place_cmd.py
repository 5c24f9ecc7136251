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


def test_cpu_replicas_show_their_cores_and_threads(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "cpu: {cores: 8, numa_nodes: 2}\n"
        "models: {m: {source: demo:tiny}}\n"
        "pools: {p: {model: m, replicas: {min: 1, max: 2}, resources: {cpu: 3}}}\n"
    )
    result = runner.invoke(app, [str(fleet), "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    pinned = {r["replica"]: (r["cpus"], r["threads"]) for r in data["replicas"]}
    assert pinned == {"p-0": ([1, 2, 3], 3), "p-1": ([4, 5, 6], 3)}  # core 0 kept, by node
    assert data["cores"]["reserved"] == [0] and data["cores"]["numa_nodes"][1] == [4, 5, 6, 7]
    table = runner.invoke(app, [str(fleet)])
    assert "1-3 (3 threads)" in table.output and "declared: 8 cores in 2 NUMA nodes" in table.output


def test_cpu_replicas_beyond_the_cores_are_refused_unless_shared(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    body = (
        "models: {m: {source: demo:tiny}}\n"
        "pools: {p: {model: m, replicas: {min: 3, max: 3}, resources: {cpu: 1}}}\n"
    )
    fleet.write_text("cpu: {cores: 2}\n" + body)
    result = runner.invoke(app, [str(fleet)])
    assert result.exit_code == 1
    assert "refused:" in result.output and "need 3 cores at their minimum" in result.output
    fleet.write_text("cpu: {cores: 2, share: true}\n" + body)
    shared = runner.invoke(app, [str(fleet), "--json"])
    assert shared.exit_code == 0, shared.output
    assert [r["shared_cpus"] for r in json.loads(shared.output)["replicas"]] == [
        False, False, True]  # fmt: skip
