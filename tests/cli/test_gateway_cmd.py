import pytest
import typer
from typer.testing import CliRunner

from inferplane.cli.gateway_cmd import gateway, parse_replica
from inferplane.gateway.serve import GatewayOptions


def test_replica_flags() -> None:
    assert parse_replica("chat=http://127.0.0.1:8001") == ("chat", "http://127.0.0.1:8001")
    for bad in ("chat", "=http://x", "chat=127.0.0.1:8001"):
        with pytest.raises(typer.BadParameter, match="POOL=URL"):
            parse_replica(bad)
    options = GatewayOptions("f.yaml", replicas=(("a", "http://x"), ("a", "http://y")))
    assert options.replica_map() == {"a": ["http://x", "http://y"]}
    with pytest.raises(ValueError, match="workers"):
        GatewayOptions("f.yaml", workers=0)


def test_a_bad_fleet_or_pool_exits_2_with_advice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = typer.Typer()
    app.command()(gateway)
    runner = CliRunner()
    missing = runner.invoke(app, [str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "cannot read file" in missing.output
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("models: {m: {source: demo:tiny}}\npools: {p: {model: m}}\n")
    unknown = runner.invoke(app, [str(fleet), "--replica", "q=http://127.0.0.1:1"])
    assert unknown.exit_code == 2 and "unknown pool 'q'" in unknown.output
