"""A PNG bar chart of a cost report: spend per group, the idle part shown apart."""

from pathlib import Path

from matplotlib.figure import Figure

from inferplane.ledger.reports import Report


def write_chart(report: Report, path: Path) -> None:
    """Write the chart; a bare Figure renders with Agg and leaves pyplot's global state alone."""
    rows = report.rows
    groups = [row.group for row in rows]
    busy = [row.spend_usd - row.idle_waste_usd for row in rows]
    idle = [row.idle_waste_usd for row in rows]
    figure = Figure(figsize=(max(6.0, 0.8 * len(rows) + 2), 4.5))
    axes = figure.subplots()
    axes.bar(groups, busy, label="requests", color="#3b75af")
    axes.bar(groups, idle, bottom=busy, label="idle", color="#d9a441")
    axes.set_ylabel("spend ($)")
    axes.set_title(f"Spend by {report.by} (total ${report.total.spend_usd:,.2f})")
    axes.legend()
    axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
