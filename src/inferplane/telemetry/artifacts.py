"""The operator artefacts shipped with the package: the Grafana dashboard and the Prometheus
alert rules (files under dashboards/), read as text or copied into a directory. The model
quality dashboard and alert rules (confidence, input drift, feedback) ship beside them as
QUALITY_ARTIFACTS."""

from importlib import resources
from pathlib import Path

DASHBOARD = "grafana-inferplane.json"
ALERT_RULES = "alerts.yaml"
ARTIFACTS = (DASHBOARD, ALERT_RULES)
QUALITY_DASHBOARD = "grafana-inferplane-quality.json"
QUALITY_ALERT_RULES = "alerts-quality.yaml"
QUALITY_ARTIFACTS = (QUALITY_DASHBOARD, QUALITY_ALERT_RULES)


def read_artifact(name: str) -> str:
    """The text of one shipped artefact (`DASHBOARD` or `ALERT_RULES`)."""
    known = ARTIFACTS + QUALITY_ARTIFACTS
    if name not in known:
        raise ValueError(f"unknown artefact {name!r}: choose one of {', '.join(known)}")
    return (resources.files("inferplane.telemetry") / "dashboards" / name).read_text("utf-8")


def install_artifacts(
    directory: Path, overwrite: bool = False, names: tuple[str, ...] = ARTIFACTS
) -> list[Path]:
    """Copy the dashboard and alert rules (or the artefacts `names`) into `directory`
    (created); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        target = directory / name
        if target.exists() and not overwrite:
            raise ValueError(f"{target} exists: pass overwrite (--force) to replace it")
        target.write_text(read_artifact(name), "utf-8")
        written.append(target)
    return written
