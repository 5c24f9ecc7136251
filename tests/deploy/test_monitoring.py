"""ServiceMonitor, PrometheusRules (the fleet's and model quality's), the dashboards' ConfigMap
and the KEDA ScaledObject's GPU behaviour."""

import json
from pathlib import Path

from inferplane.config.loader import load_fleet
from inferplane.deploy.chart import build_chart, load_raw, render_manifests
from inferplane.deploy.values import default_values

FULL = Path(__file__).parents[2] / "examples" / "full.yaml"


def test_monitoring_and_keda() -> None:
    fleet = load_fleet(FULL)
    chart = build_chart(fleet, load_raw(str(FULL)), default_values(fleet, "k"))
    assert not any(name.startswith("keda-") for name in render_manifests(chart))
    rendered = render_manifests(chart, ("keda.enabled=true", "monitoring.labels.release=kps"))
    (monitor,) = rendered["servicemonitor"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    (rule,) = rendered["prometheusrule"]
    assert len([r for g in rule["spec"]["groups"] for r in g["rules"]]) == 9
    (dashboard,) = rendered["dashboard"]
    assert json.loads(dashboard["data"]["grafana-inferplane.json"])["panels"]
    assert json.loads(dashboard["data"]["grafana-inferplane-quality.json"])["panels"]
    (quality,) = rendered["prometheusrule-quality"]
    names = [r.get("alert") for g in quality["spec"]["groups"] for r in g["rules"]]
    assert quality["metadata"]["name"] == "inferplane-quality" and names
    (scaled,) = rendered["keda-chat-primary"]
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 30
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": 60}]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [
        {"type": "Pods", "value": 1, "periodSeconds": 120}]  # fmt: skip
    trigger = scaled["spec"]["triggers"][0]
    assert "vllm:num_requests_waiting" in trigger["metadata"]["query"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 4)
    assert not any(".rollout" in name or "rollout" in name for name in rendered if "keda" in name)
