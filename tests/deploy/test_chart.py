"""The chart rendered from every example fleet: each object valid on Kubernetes 1.33-1.36
(strict), custom resources valid against their published CRDs (and the check shown to bite),
Helm rendering the chart exactly as the manifests mode does, values.schema.json refusing bad
values, and the alert rules inside the PrometheusRule passing promtool."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args

import helm_python as helm
import jsonschema
import pytest
import yaml

from inferplane.config.loader import load_fleet
from inferplane.config.schema import Backend, FleetConfig
from inferplane.deploy.chart import (
    all_objects,
    build_chart,
    load_raw,
    render_manifests,
    write_chart,
)
from inferplane.deploy.values import default_values
from tests.deploy import kube_schemas

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
FLEETS = [p for p in EXAMPLES if "pools" in (yaml.safe_load(p.read_text()) or {})]
REJECTED = sorted((Path(__file__).parent / "rejected").glob("*.yaml"))
ALL_ON = ("keda.enabled=true",)


@pytest.fixture(scope="module")
def checker() -> kube_schemas.Checker:
    return kube_schemas.Checker()


def _chart(path: Path) -> Any:
    fleet = load_fleet(path)
    return build_chart(fleet, load_raw(str(path)), default_values(fleet, admin_key="k"))


def _helm_render(chart_dir: Path, values: dict[str, Any]) -> dict[str, list[Any]]:
    with helm.Chart.load(str(chart_dir)) as loaded:
        rendered = loaded.render(values, name="inferplane", namespace="serving")
    return {
        Path(name).stem: [doc for doc in yaml.safe_load_all(text) if doc]
        for name, text in rendered.items()
    }


def test_the_examples_include_every_resource_kind() -> None:
    assert {p.name for p in FLEETS} >= {"demo.yaml", "full.yaml", "placement.yaml"}


@pytest.mark.parametrize("fleet", FLEETS, ids=lambda p: p.stem)
def test_every_object_is_valid_on_every_supported_version(
    fleet: Path, checker: kube_schemas.Checker
) -> None:
    objects = list(all_objects(render_manifests(_chart(fleet), ALL_ON, "serving")))
    kinds = {obj["kind"] for obj in objects}
    assert kinds >= {"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount", "Role",
                     "RoleBinding", "ConfigMap", "Secret", *kube_schemas.CUSTOM_KINDS}  # fmt: skip
    for obj in objects:
        assert checker.errors(obj) == [], (obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("backend", get_args(Backend))
def test_every_backend_setting_renders(backend: str, checker: kube_schemas.Checker) -> None:
    """The fleet's own backend does not matter: in the cluster the control plane runs
    `inferplane up --backend kubernetes`."""
    raw = {**load_raw(str(FLEETS[0])), "backend": backend}
    fleet = FleetConfig.model_validate(raw)
    chart = build_chart(fleet, raw, default_values(fleet, admin_key="k"))
    rendered = render_manifests(chart)
    (deployment, _service) = rendered["control-plane"]
    assert "kubernetes" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert yaml.safe_load(rendered["control-plane-fleet"][0]["data"]["fleet.yaml"])["backend"] == (
        backend
    )
    for obj in all_objects(rendered):
        assert checker.errors(obj) == []


@pytest.mark.parametrize("fixture", REJECTED, ids=lambda p: p.stem)
def test_the_checks_bite(fixture: Path, checker: kube_schemas.Checker) -> None:
    obj = yaml.safe_load(fixture.read_text())
    assert checker.errors(obj), f"{fixture.name} was accepted"


def test_every_custom_kind_has_a_fixture_that_must_be_rejected() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in REJECTED}
    assert kinds >= kube_schemas.CUSTOM_KINDS


@pytest.mark.parametrize("fleet", FLEETS, ids=lambda p: p.stem)
def test_helm_renders_what_the_manifests_mode_writes(fleet: Path, tmp_path: Path) -> None:
    chart = _chart(fleet)
    write_chart(chart, tmp_path)
    for sets, values in (((), {}), (ALL_ON, {"keda": {"enabled": True}})):
        ours = render_manifests(chart, sets, "serving")
        theirs = {name: docs for name, docs in _helm_render(tmp_path, values).items() if docs}
        assert theirs == ours


def test_values_schema_accepts_the_defaults_and_refuses_bad_values(tmp_path: Path) -> None:
    chart = _chart(FLEETS[0])
    write_chart(chart, tmp_path)
    schema = json.loads((tmp_path / "values.schema.json").read_text())
    defaults = yaml.safe_load((tmp_path / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    pool = next(iter(defaults["pools"]))
    bad: list[dict[str, Any]] = [
        {"image": {"pullPolicy": "Sometimes"}},
        {"pools": {pool: {"terminationGracePeriodSeconds": -1}}},
        {"pools": {"no-such-pool": {}}},
        {"controlPlane": {"port": "http"}},
        {"keda": {"enabled": "yes", "unknown": 1}},
    ]
    with helm.Chart.load(str(tmp_path)) as loaded:
        loaded.validate_schema({})
        for override in bad:
            with pytest.raises(helm.HelmError):
                loaded.validate_schema(override)
            merged = yaml.safe_load(yaml.safe_dump(defaults))
            _merge(merged, override)
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.Draft7Validator(schema).validate(merged)


def _merge(into: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def test_alert_rules_in_the_prometheus_rule_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: scripts/ci/prometheus.sh installs it")
    (rule,) = render_manifests(_chart(FLEETS[0]))["prometheusrule"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout
