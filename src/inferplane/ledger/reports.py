"""Cost reports: spend, tokens and unit costs grouped by team, key, model or pool.

Spend counts requests and idle replica time. Idle time belongs to a pool and its model, not to
a team or key: grouped by team or key, it is its own row, "(idle)". Utilisation is busy GPU
time over all GPU time; idle waste is what the idle time cost.
"""

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from inferplane.ledger.usage import MICRO, UsageRecord

Dimension = Literal["team", "key", "model", "pool"]
DIMENSIONS: tuple[Dimension, ...] = ("team", "key", "model", "pool")
IDLE_GROUP = "(idle)"
TOTAL_GROUP = "(total)"


@dataclass(frozen=True)
class ReportRow:
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    spend_usd: float
    usd_per_1m_tokens: float | None
    cost_per_request_p50_usd: float | None
    cost_per_request_p95_usd: float | None
    busy_gpu_hours: float
    idle_gpu_hours: float
    utilisation: float | None  # busy / (busy + idle) GPU time
    idle_waste_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Report:
    by: Dimension
    rows: tuple[ReportRow, ...]
    total: ReportRow


def percentile(values: Sequence[int], fraction: float) -> int | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


def _group_of(record: UsageRecord, by: Dimension) -> str:
    if record.kind == "idle" and by in ("team", "key"):
        return IDLE_GROUP
    return str(getattr(record, by)) or "(none)"


def _usd(micro: int | None) -> float | None:
    return None if micro is None else micro / MICRO


def summarise(group: str, records: Sequence[UsageRecord]) -> ReportRow:
    requests = [r for r in records if r.kind == "request"]
    idle = [r for r in records if r.kind == "idle"]
    costs = sorted(r.cost_micro_usd for r in requests)
    spend = sum(r.cost_micro_usd for r in records)
    tokens = sum(r.total_tokens for r in requests)
    busy_s, idle_s = sum(r.gpu_seconds for r in requests), sum(r.gpu_seconds for r in idle)
    return ReportRow(
        group=group,
        requests=len(requests),
        prompt_tokens=sum(r.prompt_tokens for r in requests),
        completion_tokens=sum(r.completion_tokens for r in requests),
        spend_usd=spend / MICRO,
        usd_per_1m_tokens=spend / tokens if tokens else None,  # micro-$ per token = $ per 1M
        cost_per_request_p50_usd=_usd(percentile(costs, 0.50)),
        cost_per_request_p95_usd=_usd(percentile(costs, 0.95)),
        busy_gpu_hours=busy_s / 3600,
        idle_gpu_hours=idle_s / 3600,
        utilisation=busy_s / (busy_s + idle_s) if idle and busy_s + idle_s > 0 else None,
        idle_waste_usd=sum(r.cost_micro_usd for r in idle) / MICRO,
    )


def build_report(records: Iterable[UsageRecord], by: Dimension) -> Report:
    """Rows by descending spend, and a total over everything."""
    if by not in DIMENSIONS:
        raise ValueError(f"cannot group by {by!r}: use one of {', '.join(DIMENSIONS)}")
    everything = list(records)
    groups: dict[str, list[UsageRecord]] = {}
    for record in everything:
        groups.setdefault(_group_of(record, by), []).append(record)
    rows = sorted((summarise(g, rs) for g, rs in groups.items()), key=lambda r: -r.spend_usd)
    return Report(by, tuple(rows), summarise(TOTAL_GROUP, everything))


def to_json(report: Report) -> str:
    payload = {
        "by": report.by,
        "rows": [asdict(row) for row in report.rows],
        "total": asdict(report.total),
    }
    return json.dumps(payload, indent=2)


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    rows = [*report.rows, report.total]
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(report.total)), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    return buffer.getvalue()
