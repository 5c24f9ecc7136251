"""The control plane's Deployment, RBAC and fleet ConfigMap."""

from pathlib import Path

import yaml

from inferplane.config.loader import load_fleet
from inferplane.deploy.chart import build_chart, load_raw, render_manifests
from inferplane.deploy.values import default_values

FULL = Path(__file__).parents[2] / "examples" / "full.yaml"


def test_control_plane_objects() -> None:
    fleet = load_fleet(FULL)
    chart = build_chart(fleet, load_raw(str(FULL)), default_values(fleet, "k"))
    rendered = render_manifests(chart, ("controlPlane.port=9000",), "serving")
    deployment, service = rendered["control-plane"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:4] == ["up", "/etc/inferplane/fleet.yaml", "--backend", "kubernetes"]
    assert container["args"][container["args"].index("--port") + 1] == "9000"
    assert service["spec"]["ports"][0]["port"] == 9000
    _account, role, binding = rendered["control-plane-rbac"]
    verbs = {(r["resources"][0], v) for r in role["rules"] for v in r["verbs"]}
    assert {("deployments/scale", "patch"), ("pods", "patch"), ("pods", "list")} <= verbs
    assert binding["subjects"][0]["namespace"] == "serving"
    (config,) = rendered["control-plane-fleet"]
    fleet_file = yaml.safe_load(config["data"]["fleet.yaml"])
    assert fleet_file["auth"]["keys_file"] == "/etc/inferplane/auth/keys.yaml"
    assert set(fleet_file["pools"]) == set(fleet.pools)
    (secret,) = rendered["admin-secret"]
    assert secret["stringData"] == {"admin-key": "k"}
    assert "admin-secret" not in render_manifests(chart, ("admin.key=",))
