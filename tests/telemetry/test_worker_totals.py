"""Every worker's status-page totals summed, whichever worker samples."""

import json
from pathlib import Path

from prometheus_client import CollectorRegistry

from inferplane.telemetry import names
from inferplane.telemetry.ui import StatusBoard, read_totals
from inferplane.telemetry.worker_totals import SharedTotals, summed


class _Metrics:
    """A worker's three metrics the page reads."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = names.counter(names.REQUESTS, registry)
        self.ttft = names.histogram(names.TIME_TO_FIRST_TOKEN, registry)
        self.cost = names.counter(names.COST_DOLLARS, registry)

    def serve(self, requests: int, ttft_s: float, cost: float) -> None:
        self.requests.labels("m", "chat", "200").inc(requests)
        for _ in range(requests):
            self.ttft.labels("m", "chat").observe(ttft_s)
        self.cost.labels("m", "team").inc(cost)


def _worker(folder: Path, index: int) -> tuple[SharedTotals, _Metrics]:
    registry = CollectorRegistry()
    return SharedTotals(folder, index, registry), _Metrics(registry)


def test_each_worker_sees_the_sum_of_every_workers_latest_totals(tmp_path: Path) -> None:
    first, first_metrics = _worker(tmp_path, 0)
    second, second_metrics = _worker(tmp_path, 1)
    first_metrics.serve(3, 0.03, 0.5)
    second_metrics.serve(5, 0.3, 0.25)
    first(1.0)  # each publishes at its sample
    both = second(2.0)
    assert both.at == 2.0 and both.requests == 8 and both.cost == 0.75
    counts = dict(both.ttft_buckets)
    assert counts[0.04] == 3 and counts[float("inf")] == 8
    second_metrics.serve(2, 0.3, 0.0)
    assert first(3.0).requests == 8  # the other's share as of its last sample
    assert second(4.0).requests == 10
    assert first(5.0).requests == 10


def test_a_torn_or_foreign_file_is_skipped(tmp_path: Path) -> None:
    own, metrics = _worker(tmp_path, 0)
    metrics.serve(2, 0.03, 0.0)
    (tmp_path / "worker-1.totals.json").write_text('{"requests": 4')  # mid-write
    (tmp_path / "worker-2.totals.json").write_text(json.dumps({"requests": 1}))
    assert own(1.0).requests == 2


def test_summed_keeps_one_bucket_per_bound() -> None:
    registry = CollectorRegistry()
    _Metrics(registry).serve(1, 0.03, 0.0)
    one = read_totals(registry, 0.0)
    both = summed(7.0, [one, one])
    assert both.at == 7.0 and both.requests == 2
    assert [bound for bound, _ in both.ttft_buckets] == [bound for bound, _ in one.ttft_buckets]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _board_of_two(
    folder: Path,
) -> tuple[StatusBoard, _Clock, _Metrics, tuple[SharedTotals, _Metrics]]:
    """Worker 0's board on shared totals, its clock and metrics, and worker 1's side."""
    mine, my_metrics = _worker(folder, 0)
    clock = _Clock()
    board = StatusBoard(dict, {}, mine.registry, clock=clock, wall=clock, totals=mine)
    return board, clock, my_metrics, _worker(folder, 1)


def test_a_board_on_shared_totals_charts_every_workers_requests(tmp_path: Path) -> None:
    board, clock, my_metrics, (other, other_metrics) = _board_of_two(tmp_path)
    other(0.0)
    board.sample()
    my_metrics.serve(2, 0.03, 0.0)
    other_metrics.serve(6, 0.03, 0.0)
    other(0.5)
    clock.now = 2.0
    board.sample()
    (point,) = board.points
    assert point.requests_per_s == 4.0  # 8 requests in 2 s, not this worker's 2
    assert board.status()["totals"]["requests"] == 8


def test_a_restarted_worker_does_not_bend_the_ttft_median(tmp_path: Path) -> None:
    board, clock, my_metrics, (other, other_metrics) = _board_of_two(tmp_path)
    other_metrics.serve(9, 0.03, 0.0)
    other(0.0)
    board.sample()
    restarted, _ = _worker(tmp_path, 1)  # worker 1 again, its counters empty
    restarted(0.5)
    my_metrics.serve(10, 0.3, 0.0)
    clock.now = 1.0
    board.sample()
    (point,) = board.points
    # the other worker's 9 earlier requests (lower buckets) must not bend this interval's
    # median: Prometheus's interpolation within the 0.25-0.5 bucket of these 10 requests
    assert point.ttft_p50_s == 0.375
