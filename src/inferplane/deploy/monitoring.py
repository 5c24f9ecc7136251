"""Observability and the optional KEDA scaler: a ServiceMonitor over the control plane and every
pool, PrometheusRules carrying the shipped alert rules (the fleet's, and the model-quality ones),
the Grafana dashboards (the fleet's and model quality) as a ConfigMap (the sidecar's
`grafana_dashboard` label), and per pool a KEDA ScaledObject.

KEDA is for teams that want it to scale instead of the controller; the behaviour is the one
operators expect for GPUs (slow to add, slower to remove) taken from the pool's autoscale
settings. The queries read the pods' own metrics, so a pool at zero shows no demand to KEDA:
scale from zero is the controller's job (it holds requests while a replica comes up).
"""

from typing import Any

from inferplane.config.schema import Autoscale, PoolSpec
from inferplane.deploy.expr import File, merge, v
from inferplane.deploy.names import PREFIX, pool_object
from inferplane.telemetry.artifacts import (
    ALERT_RULES,
    DASHBOARD,
    QUALITY_ALERT_RULES,
    QUALITY_DASHBOARD,
)

MONITORING_LABELS = {"app.kubernetes.io/name": PREFIX}
DASHBOARD_LABEL = "grafana_dashboard"


def _labels() -> Any:
    return merge(MONITORING_LABELS, v("monitoring", "labels"))


def service_monitor() -> dict[str, Any]:
    endpoint = {"port": "http", "path": "/metrics", "interval": v("monitoring", "serviceMonitor",
                                                                   "interval")}  # fmt: skip
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": PREFIX, "labels": _labels()},
        "spec": {
            "selector": {"matchLabels": MONITORING_LABELS},
            "endpoints": [endpoint],
        },
    }


def prometheus_rule(name: str = PREFIX, rules_file: str = ALERT_RULES) -> dict[str, Any]:
    rules = File(rules_file, parse_yaml=True)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "labels": _labels()},
        "spec": rules,
    }


def quality_prometheus_rule() -> dict[str, Any]:
    """The model-quality alert rules (confidence, input drift, feedback)."""
    return prometheus_rule(f"{PREFIX}-quality", QUALITY_ALERT_RULES)


def dashboard_config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{PREFIX}-dashboard",
            "labels": {**MONITORING_LABELS, DASHBOARD_LABEL: "1"},
        },
        "data": {DASHBOARD: File(DASHBOARD), QUALITY_DASHBOARD: File(QUALITY_DASHBOARD)},
    }


def keda_query(pool: str, metric: str) -> tuple[str, str]:
    """PromQL over the pool's pods and KEDA's metric type for an autoscale metric:
    AverageValue divides by the replica count (the per-replica targets)."""
    pods = f'service="{pool_object(pool)}"'
    if metric == "waiting_per_replica":
        return f"sum(vllm:num_requests_waiting{{{pods}}}) or vector(0)", "AverageValue"
    if metric == "in_flight_per_replica":
        running = f"sum(vllm:num_requests_running{{{pods}}})"
        return f"{running} + sum(vllm:num_requests_waiting{{{pods}}}) or vector(0)", "AverageValue"
    if metric == "kv_usage":
        return f"avg(vllm:gpu_cache_usage_perc{{{pods}}}) or vector(0)", "Value"
    return (f"histogram_quantile(0.95, sum by (le) "
            f"(rate(vllm:time_to_first_token_seconds_bucket{{{pods}}}[1m])))", "Value")  # fmt: skip


def _behavior(scale: Autoscale) -> dict[str, Any]:
    def direction(window: float, step: int, period: float) -> dict[str, Any]:
        policy = {"type": "Pods", "value": step, "periodSeconds": int(period)}
        return {"stabilizationWindowSeconds": int(window), "policies": [policy]}

    return {
        "scaleUp": direction(scale.up_window, scale.up_step, scale.up_period),
        "scaleDown": direction(scale.down_window, scale.down_step, scale.down_period),
    }


def scaled_object(pool: str, spec: PoolSpec) -> dict[str, Any]:
    query, metric_type = keda_query(pool, spec.autoscale.metric)
    trigger = {
        "type": "prometheus",
        "metricType": metric_type,
        "metadata": {
            "serverAddress": v("keda", "prometheusUrl"),
            "query": query,
            "threshold": f"{spec.autoscale.target:g}",
        },
    }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": pool_object(pool), "labels": {**MONITORING_LABELS}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": pool_object(pool)},
            "minReplicaCount": spec.replicas.min,
            "maxReplicaCount": spec.replicas.max,
            "pollingInterval": 15,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(spec.autoscale)}},
            "triggers": [trigger],
        },
    }  # fmt: skip
