"""A fleet's Helm chart: which templates it has, written as a chart directory (Chart.yaml,
values.yaml, values.schema.json, templates/, files/) or rendered in Python with the default
values and `--set` overrides as plain manifests for `kubectl apply -f`.

Both outputs come from the same object trees (expr.py), so the manifests are what Helm would
render from the chart with the same values.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferplane import __version__
from inferplane.config.schema import FleetConfig
from inferplane.deploy import control_plane, monitoring, pools
from inferplane.deploy.expr import Context, V, dump, helm_yaml, resolve, v
from inferplane.deploy.names import PREFIX, dns_label, managed_pools
from inferplane.deploy.overrides import apply_sets, checked
from inferplane.deploy.values import ChartValues, values_schema
from inferplane.telemetry.artifacts import ARTIFACTS, QUALITY_ARTIFACTS, read_artifact

ROLLOUT_SUFFIX = ".rollout"
KUBE_VERSION = ">=1.33.0-0"


@dataclass(frozen=True)
class Template:
    """One file of templates/: its objects, rendered only while `when` is true."""

    name: str
    objects: tuple[dict[str, Any], ...]
    when: V | None = None


@dataclass(frozen=True)
class Chart:
    """Everything a fleet's chart is made of."""

    fleet: FleetConfig
    values: ChartValues
    templates: tuple[Template, ...]


def cluster_fleet_text(raw: dict[str, Any]) -> str:
    """The fleet file as the control plane reads it in the cluster: the keys file, if any,
    comes from the `inferplane-keys` Secret mounted beside it."""
    fleet = dict(raw)
    auth = dict(fleet.get("auth") or {})
    if auth.get("keys_file"):
        auth["keys_file"] = f"{control_plane.KEYS_MOUNT}/{Path(auth['keys_file']).name}"
        fleet["auth"] = auth
    return dump(fleet)


def build_chart(fleet: FleetConfig, raw: dict[str, Any], values: ChartValues) -> Chart:
    with_keys = fleet.auth.keys_file is not None
    cp = control_plane
    found = [
        Template("control-plane-rbac", (cp.service_account(), cp.role(), cp.role_binding())),
        Template("control-plane-fleet", (cp.fleet_config_map(cluster_fleet_text(raw)),)),
        Template("admin-secret", (cp.admin_secret(),), v("admin", "key")),
        Template("control-plane", (cp.deployment(with_keys), cp.service())),
        Template("servicemonitor", (monitoring.service_monitor(),),
                 v("monitoring", "serviceMonitor", "enabled")),
        Template("prometheusrule", (monitoring.prometheus_rule(),),
                 v("monitoring", "prometheusRule", "enabled")),
        Template("prometheusrule-quality", (monitoring.quality_prometheus_rule(),),
                 v("monitoring", "prometheusRule", "enabled")),
        Template("dashboard", (monitoring.dashboard_config_map(),),
                 v("monitoring", "dashboard", "enabled")),
    ]  # fmt: skip
    for name, spec in managed_pools(fleet).items():
        objects = (pools.deployment(name, fleet, spec), pools.headless_service(name),
                   pools.disruption_budget(name))  # fmt: skip
        found.append(Template(f"pool-{dns_label(name)}", objects))
        if not name.endswith(ROLLOUT_SUFFIX):  # a canary's size is the rollout's, not KEDA's
            keda = (monitoring.scaled_object(name, spec),)
            found.append(Template(f"keda-{dns_label(name)}", keda, v("keda", "enabled")))
    return Chart(fleet, values, tuple(found))


def chart_yaml() -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "name": PREFIX,
        "description": "An inferplane fleet: gateway + controller, model pools, monitoring.",
        "type": "application",
        "version": __version__,
        "appVersion": __version__,
        "kubeVersion": KUBE_VERSION,
    }


def helm_template(template: Template) -> str:
    body = "---\n".join(helm_yaml(obj) for obj in template.objects)
    if template.when is None:
        return body
    return f"{{{{- if {template.when.go()} }}}}\n{body}{{{{- end }}}}\n"


def write_chart(chart: Chart, out: Path) -> list[Path]:
    """The chart directory; returns the files written."""
    files = {
        "Chart.yaml": dump(chart_yaml()),
        "values.yaml": dump(chart.values.model_dump(mode="json")),
        "values.schema.json": json.dumps(values_schema(chart.fleet), indent=2) + "\n",
        **{f"files/{name}": read_artifact(name) for name in ARTIFACTS + QUALITY_ARTIFACTS},
        **{f"templates/{t.name}.yaml": helm_template(t) for t in chart.templates},
    }
    return _write(out, files)


def render_manifests(
    chart: Chart, sets: Sequence[str] = (), namespace: str = "default"
) -> dict[str, list[dict[str, Any]]]:
    """Each template's objects rendered with the default values and `sets`."""
    values = apply_sets(chart.values.model_dump(mode="json"), sets)
    checked(values, managed_pools(chart.fleet))
    context = Context(values, namespace, read_artifact)
    return {
        t.name: [resolve(obj, context) for obj in t.objects]
        for t in chart.templates
        if t.when is None or resolve(t.when, context)
    }


def write_manifests(rendered: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    files = {f"{name}.yaml": "---\n".join(dump(obj) for obj in objs) for name, objs in
             rendered.items()}  # fmt: skip
    return _write(out, files)


def all_objects(rendered: dict[str, list[dict[str, Any]]]) -> Iterable[dict[str, Any]]:
    for objects in rendered.values():
        yield from objects


def _write(out: Path, files: dict[str, str]) -> list[Path]:
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        written.append(path)
    return written


def load_raw(path: str) -> dict[str, Any]:
    loaded = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a fleet file is a map of sections")
    return loaded
