"""The quality report: per model version, from the ledger's usage and feedback records, the
answers' confidence (mean token logprob, low-confidence share) and what users said and did
(ratings, thumbs, regenerations, abandoned streams), with drift scores read from a gateway's
metrics where given. Feedback a key gave about another key's request does not count.
"""

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from prometheus_client.parser import text_string_to_metric_families

from inferplane.ledger.feedback import FeedbackRecord
from inferplane.ledger.usage import UsageRecord
from inferplane.telemetry import names

Version = tuple[str, str]  # (model, model_version)


@dataclass
class QualityRow:
    model: str
    model_version: str
    requests: int = 0
    scored: int = 0  # requests whose replica reported a confidence
    mean_logprob: float | None = None
    low_confidence_share: float | None = None
    ratings: int = 0
    mean_rating: float | None = None
    thumbs_up: int = 0
    thumbs_down: int = 0
    regenerations: int = 0
    abandoned: int = 0
    negative_rate: float | None = None  # negative feedback events per request
    drift: dict[str, float] = field(default_factory=dict)  # signal -> score


@dataclass
class _Sums:
    logprob: float = 0.0
    low: float = 0.0
    rating: float = 0.0
    negative: int = 0


def build_quality_report(
    usage: list[UsageRecord],
    feedback: list[FeedbackRecord],
    drift: dict[Version, dict[str, float]] | None = None,
) -> list[QualityRow]:
    rows: dict[Version, QualityRow] = {}
    sums: dict[Version, _Sums] = defaultdict(_Sums)
    served = {}
    for record in usage:
        if record.kind != "request":
            continue
        version = (record.model, record.model_version)
        served[record.request_id] = (version, record.key)
        row = _row(rows, version)
        row.requests += 1
        if record.mean_logprob is not None:
            row.scored += 1
            sums[version].logprob += record.mean_logprob
            sums[version].low += record.low_confidence_share or 0.0
    for event in feedback:
        found = served.get(event.request_id)
        if found is None or found[1] != event.key:
            continue  # unknown request, or another key's
        _count(_row(rows, found[0]), sums[found[0]], event)
    for version, scores in (drift or {}).items():
        _row(rows, version).drift = dict(scores)
    for version, row in rows.items():
        _finish(row, sums[version])
    return sorted(rows.values(), key=lambda row: (row.model, row.model_version))


def _row(rows: dict[Version, QualityRow], version: Version) -> QualityRow:
    if version not in rows:
        rows[version] = QualityRow(*version)
    return rows[version]


def _count(row: QualityRow, sums: _Sums, event: FeedbackRecord) -> None:
    sums.negative += event.negative
    if event.kind == "rating":
        row.ratings += 1
        sums.rating += event.value
    elif event.kind == "thumbs":
        row.thumbs_up += event.value >= 1
        row.thumbs_down += event.value < 1
    elif event.kind == "regeneration":
        row.regenerations += 1
    else:
        row.abandoned += 1


def _finish(row: QualityRow, sums: _Sums) -> None:
    if row.scored:
        row.mean_logprob = sums.logprob / row.scored
        row.low_confidence_share = sums.low / row.scored
    if row.ratings:
        row.mean_rating = sums.rating / row.ratings
    if row.requests:
        row.negative_rate = sums.negative / row.requests


def drift_from_metrics(text: str) -> dict[Version, dict[str, float]]:
    """The drift gauges of a gateway's /metrics text, by model version and signal."""
    found: dict[Version, dict[str, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if family.name != names.DRIFT_SCORE.name:
            continue
        for sample in family.samples:
            labels = sample.labels
            version = (labels.get("model", ""), labels.get("model_version", ""))
            found[version][labels.get("signal", "")] = float(sample.value)
    return dict(found)


def to_json(rows: list[QualityRow]) -> dict[str, Any]:
    return {"rows": [asdict(row) for row in rows]}


def write_quality_chart(rows: list[QualityRow], path: Path) -> None:
    """Mean logprob, negative feedback rate and drift per model version, side by side."""
    labels = [f"{row.model}@{row.model_version}" for row in rows]
    figure = Figure(figsize=(max(9.0, 1.2 * len(rows) + 6), 4.0))
    left, middle, right = figure.subplots(1, 3)
    left.bar(labels, [row.mean_logprob or 0.0 for row in rows], color="#3b75af")
    left.set_title("mean token logprob")
    middle.bar(labels, [row.negative_rate or 0.0 for row in rows], color="#c0504d")
    middle.set_title("negative feedback / request")
    for offset, signal in enumerate(("length", "script", "embedding")):
        xs = [index + 0.25 * (offset - 1) for index in range(len(rows))]
        right.bar(xs, [row.drift.get(signal, 0.0) for row in rows], width=0.25, label=signal)
    right.set_xticks(range(len(rows)), labels)
    right.set_title("input drift")
    right.legend()
    for axes in (left, middle, right):
        axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
