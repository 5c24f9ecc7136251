"""deploy/: the compose file and what it mounts (Docker does not run here: the files are
parsed and cross-checked, and Prometheus's own checker reads its config)."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferplane.config.loader import load_fleet

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((DEPLOY / source).resolve(), target))
    return mounts


def test_services_and_the_gpu_profile() -> None:
    services = _compose()["services"]
    assert set(services) == {"replica", "gateway", "prometheus", "grafana", "dcgm-exporter"}
    assert services["dcgm-exporter"]["profiles"] == ["gpu"]
    assert all("profiles" not in s for name, s in services.items() if name != "dcgm-exporter")
    assert services["gateway"]["command"][:2] == ["inferplane", "gateway"]
    assert services["replica"]["command"][:2] == ["inferplane", "serve"]


def test_every_mounted_file_exists() -> None:
    compose = _compose()
    mounts = [m for s in compose["services"].values() for m in _bind_mounts(s)]
    assert len(mounts) >= 4
    for source, target in mounts:
        assert source.exists(), f"{source} (mounted at {target}) is missing"
    build = compose["x-inferplane"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_prometheus_scrapes_the_compose_services() -> None:
    services = _compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    assert targets == {
        "gateway": "gateway:8080",
        "replica": "replica:8001",
        "dcgm": "dcgm-exporter:9400",
    }
    assert "8001" in services["replica"]["command"]
    assert services["gateway"]["ports"] == ["8080:8080"]
    rules_mount = dict((t, s) for s, t in _bind_mounts(services["prometheus"]))
    assert any(t.startswith("/etc/prometheus/rules/") for t in rules_mount)
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yaml"]


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "inferplane.yaml").read_text())
    folder = dashboards["providers"][0]["options"]["path"]
    mounted = {target: source for source, target in _bind_mounts(grafana)}
    assert mounted[f"{folder}/grafana-inferplane.json"].name == "grafana-inferplane.json"
    quality = mounted[f"{folder}/grafana-inferplane-quality.json"]
    assert quality.name == "grafana-inferplane-quality.json" and quality.is_file()


def test_prometheus_loads_the_model_quality_rules_too() -> None:
    mounts = _bind_mounts(_compose()["services"]["prometheus"])
    rules = [source for source, target in mounts if target.startswith("/etc/prometheus/rules/")]
    assert sorted(source.name for source in rules) == ["alerts-quality.yaml", "alerts.yaml"]
    assert all(source.is_file() for source in rules)


def test_the_compose_fleet_loads_and_fronts_the_replica() -> None:
    fleet = load_fleet(DEPLOY / "fleet.yaml")
    (pool,) = fleet.pools.values()
    assert pool.endpoints == ("http://replica:8001",)


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: scripts/ci/prometheus.sh installs it")
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
