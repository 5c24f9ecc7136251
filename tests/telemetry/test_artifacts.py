"""The shipped dashboard and alert rules: they parse, read only names from names.py, pass
`promtool check rules`, and fire at the issue's thresholds (`promtool test rules`)."""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferplane.telemetry import names
from inferplane.telemetry.artifacts import (
    ALERT_RULES,
    DASHBOARD,
    install_artifacts,
    read_artifact,
)
from inferplane.telemetry.promql import metric_names

PROMTOOL_TIMEOUT_S = 60
ALERTS_DIR = Path(__file__).parent / "alerts"


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(read_artifact(DASHBOARD))
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(read_artifact(ALERT_RULES))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed: scripts/ci/prometheus.sh installs it")
    return path


def test_dashboard_has_the_four_sections_and_a_datasource_variable() -> None:
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert [r.split(":")[0] for r in rows] == ["Fleet overview", "Per model", "GPU", "Cost"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_every_dashboard_query_reads_known_names() -> None:
    known = names.known_series()
    exprs = [t["expr"] for p in _panels(_dashboard()) for t in p.get("targets", [])]
    assert len(exprs) > 30
    for expr in exprs:
        found = metric_names(expr)
        assert found, expr
        assert found <= known, f"unknown {found - known} in {expr}"


def test_dashboard_variables_read_known_names() -> None:
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((\S+), (\w+)\)", variable["definition"])
        assert match is not None, variable["definition"]
        spec = names.family_of(match.group(1))
        assert spec is not None
        assert match.group(2) in (*spec.labels, "job", "instance")


def test_panels_use_the_datasource_variable() -> None:
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_every_alert_reads_known_names_and_says_what_to_do() -> None:
    known = names.known_series()
    rules = _rules()
    assert len(rules) == 9
    for rule in rules:
        found = metric_names(rule["expr"])
        assert found, rule["alert"]
        assert found <= known, f"{rule['alert']}: unknown {found - known}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = _promtool()
    (rules,) = [p for p in install_artifacts(tmp_path) if p.name == ALERT_RULES]
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_alerts_fire_at_the_thresholds(tmp_path: Path) -> None:
    """Series just over and just under each threshold, evaluated by promtool."""
    promtool = _promtool()
    install_artifacts(tmp_path)
    shutil.copy(ALERTS_DIR / "thresholds_test.yaml", tmp_path)
    done = subprocess.run(
        [promtool, "test", "rules", "thresholds_test.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_install_refuses_to_overwrite_unless_told(tmp_path: Path) -> None:
    install_artifacts(tmp_path)
    with pytest.raises(ValueError, match="exists"):
        install_artifacts(tmp_path)
    assert len(install_artifacts(tmp_path, overwrite=True)) == 2
    with pytest.raises(ValueError, match="unknown artefact"):
        read_artifact("nope.json")
