import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from inferplane.ledger.chart import write_chart
from inferplane.ledger.reports import (
    IDLE_GROUP,
    build_report,
    percentile,
    to_csv,
    to_json,
)
from inferplane.ledger.store import UsageStore
from tests.ledger.synthetic import REPLICAS, history

START, HOURS = 1_790_000_000.0, 1.0
END = START + HOURS * 3600


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile(list(range(1, 101)), 0.95) == 95


def test_books_close_through_the_store(store: UsageStore) -> None:
    store.write(history(START, END))
    records = store.records()
    # One hour of each replica: request and idle rows add up to the price, to the micro-dollar.
    assert sum(r.cost_micro_usd for r in records) == 2_690_000 + 2_690_000 + 430_000
    report = build_report(records, "pool")
    expected = sum((Decimal(str(r.hourly_usd)) * Decimal(str(HOURS)) for r in REPLICAS), Decimal(0))
    assert Decimal(str(report.total.spend_usd)).quantize(Decimal("0.01")) == expected.quantize(
        Decimal("0.01")
    )
    assert report.total.busy_gpu_hours + report.total.idle_gpu_hours == pytest.approx(3 * HOURS)


def test_by_team_puts_idle_apart() -> None:
    report = build_report(history(START, END), "team")
    groups = {row.group: row for row in report.rows}
    assert set(groups) == {"ml", "web", IDLE_GROUP}
    assert groups["ml"].utilisation is None and groups["ml"].idle_waste_usd == 0
    assert groups[IDLE_GROUP].requests == 0
    assert groups[IDLE_GROUP].idle_waste_usd == report.total.idle_waste_usd > 0
    assert sum(row.requests for row in report.rows) == report.total.requests
    assert sum(row.spend_usd for row in report.rows) == pytest.approx(report.total.spend_usd)


def test_by_pool_has_utilisation_and_unit_costs() -> None:
    report = build_report(history(START, END), "pool")
    chat = next(row for row in report.rows if row.group == "chat-primary")
    assert chat.utilisation is not None and 0 < chat.utilisation < 1
    assert chat.busy_gpu_hours / (chat.busy_gpu_hours + chat.idle_gpu_hours) == pytest.approx(
        chat.utilisation
    )
    assert chat.usd_per_1m_tokens == pytest.approx(chat.spend_usd / chat.tokens * 1e6)
    assert chat.cost_per_request_p50_usd is not None and chat.cost_per_request_p95_usd is not None
    assert 0 < chat.cost_per_request_p50_usd <= chat.cost_per_request_p95_usd
    assert [row.spend_usd for row in report.rows] == sorted(
        (row.spend_usd for row in report.rows), reverse=True
    )


def test_formats_and_chart(tmp_path: Path) -> None:
    report = build_report(history(START, END), "model")
    payload = json.loads(to_json(report))
    assert payload["by"] == "model" and {r["group"] for r in payload["rows"]} == {
        "chat-small",
        "minilm",
    }
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [row["group"] for row in rows][-1] == "(total)"
    chart = tmp_path / "spend.png"
    write_chart(report, chart)
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_unknown_dimension() -> None:
    with pytest.raises(ValueError, match="use one of team, key, model, pool"):
        build_report([], "user")  # type: ignore[arg-type]
