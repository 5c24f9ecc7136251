"""The model quality dashboard and alert rules: they read only names from names.py, pass
`promtool check rules`, and fire at their thresholds (`promtool test rules`)."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferplane.telemetry import names
from inferplane.telemetry.artifacts import (
    QUALITY_ALERT_RULES,
    QUALITY_ARTIFACTS,
    QUALITY_DASHBOARD,
    install_artifacts,
    read_artifact,
)
from inferplane.telemetry.promql import metric_names

ALERTS_DIR = Path(__file__).parent / "alerts"
QUALITY = {names.MEAN_LOGPROB, names.LOW_CONFIDENCE_SHARE, names.DRIFT_SCORE, names.FEEDBACK_EVENTS}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed: scripts/ci/prometheus.sh installs it")
    return path


def _exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads(read_artifact(QUALITY_DASHBOARD))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    groups = yaml.safe_load(read_artifact(QUALITY_ALERT_RULES))["groups"]
    rules = [rule["expr"] for group in groups for rule in group["rules"]]
    return [t["expr"] for p in panels for t in p["targets"]] + rules


def test_the_quality_artifacts_read_known_names_and_cover_every_quality_metric() -> None:
    known = names.known_series()
    seen: set[str] = set()
    for expr in _exprs():
        found = metric_names(expr)
        assert found and found <= known, expr
        seen |= found
    for spec in QUALITY:
        assert seen & set(spec.series()), spec.name


def test_promtool_checks_and_fires_the_quality_rules_at_their_thresholds(tmp_path: Path) -> None:
    promtool = _promtool()
    install_artifacts(tmp_path, names=QUALITY_ARTIFACTS)
    shutil.copy(ALERTS_DIR / "quality_thresholds_test.yaml", tmp_path)
    for command in (["check", "rules", QUALITY_ALERT_RULES],
                    ["test", "rules", "quality_thresholds_test.yaml"]):  # fmt: skip
        done = subprocess.run(
            [promtool, *command], capture_output=True, text=True, cwd=tmp_path, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
